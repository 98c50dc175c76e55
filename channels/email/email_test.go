package email_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/email"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/smtpsink"
)

const from = "Gym Notifications <no-reply@gym.example>"

type fixture struct {
	sink   *smtpsink.Sink
	outbox *sinks.Outbox
	roots  *x509.CertPool
}

// startSink starts an SMTP sink offering STARTTLS with a fresh self-signed
// certificate (or no TLS at all when plain is set).
func startSink(t testing.TB, opts smtpsink.Options, plain bool) *fixture {
	t.Helper()
	f := &fixture{outbox: sinks.NewOutbox(1000)}
	if !plain {
		serverTLS, roots, err := smtpsink.SelfSignedTLS()
		if err != nil {
			t.Fatal(err)
		}
		opts.TLS, f.roots = serverTLS, roots
	}
	sink, err := smtpsink.Start(f.outbox, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	f.sink = sink
	return f
}

func (f *fixture) config() email.Config {
	return email.Config{
		Addr:      f.sink.Addr(),
		From:      from,
		PoolSize:  2,
		Timeout:   10 * time.Second,
		HeloName:  "herald.test",
		TLSConfig: &tls.Config{RootCAs: f.roots},
	}
}

func newSender(t testing.TB, cfg email.Config) *email.Sender {
	t.Helper()
	s, err := email.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func message(id string) *channels.Message {
	return &channels.Message{
		NotificationID: id,
		Channel:        notification.Email,
		To:             "ana@example.com",
		ToName:         "Ana Díaz",
		Subject:        "Reserva confirmada: Spin 07:00 ✓",
		Text:           "Hola Ana,\n\nTu plaza en Spin está confirmada.\n",
		HTML:           "<p>Hola <b>Ana</b>, tu plaza en Spin está confirmada.</p>",
	}
}

func only(t *testing.T, o *sinks.Outbox) sinks.Delivery {
	t.Helper()
	all := o.All()
	if len(all) != 1 {
		t.Fatalf("outbox has %d deliveries, want 1", len(all))
	}
	return all[0]
}

func TestSendDeliversMessage(t *testing.T) {
	invite := []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:Spin\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
	tests := []struct {
		name      string
		edit      func(m *channels.Message)
		wantTypes map[string]string // attachment name -> content type
	}{
		{name: "text and HTML"},
		{name: "text only", edit: func(m *channels.Message) { m.HTML = "" }},
		{name: "HTML only", edit: func(m *channels.Message) { m.Text = "" }},
		{name: "no display name", edit: func(m *channels.Message) { m.ToName = "" }},
		{name: "display name with quotes and comma", edit: func(m *channels.Message) { m.ToName = `Díaz, Ana "Anita"` }},
		{
			name: "calendar invite without content type",
			edit: func(m *channels.Message) {
				m.Attachments = []channels.Attachment{{Filename: "invite.ics", Data: invite}}
			},
			wantTypes: map[string]string{"invite.ics": "text/calendar; method=REQUEST; charset=UTF-8"},
		},
		{
			name: "calendar invite with content type but no charset",
			edit: func(m *channels.Message) {
				m.Attachments = []channels.Attachment{{Filename: "invite.ics", ContentType: "text/calendar; method=CANCEL", Data: invite}}
			},
			wantTypes: map[string]string{"invite.ics": "text/calendar; method=CANCEL; charset=UTF-8"},
		},
		{
			name: "two attachments",
			edit: func(m *channels.Message) {
				m.Attachments = []channels.Attachment{
					{Filename: "invite.ics", Data: invite},
					{Filename: "receipt.pdf", Data: []byte("%PDF-1.4 not really")},
				}
			},
			wantTypes: map[string]string{
				"invite.ics":  "text/calendar; method=REQUEST; charset=UTF-8",
				"receipt.pdf": "application/pdf",
			},
		},
	}
	f := startSink(t, smtpsink.Options{}, false)
	s := newSender(t, f.config())
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := message(fmt.Sprintf("ntf_deliver%d", i))
			if tt.edit != nil {
				tt.edit(m)
			}
			before := f.outbox.Len()
			rcpt, err := s.Send(context.Background(), m)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			all := f.outbox.All()
			if len(all) != before+1 {
				t.Fatalf("outbox grew by %d, want 1", len(all)-before)
			}
			d := all[len(all)-1]
			wantTo := m.To
			if m.ToName != "" {
				wantTo = m.ToName + " <" + m.To + ">"
			}
			checks := []struct{ field, got, want string }{
				{"Channel", d.Channel, "email"},
				{"To", d.To, m.To},
				{"header To", d.Meta["header_to"], wantTo},
				{"From", d.From, from},
				{"envelope from", d.Meta["envelope_from"], "no-reply@gym.example"},
				{"Subject", d.Subject, m.Subject},
				{"Text", strings.TrimRight(d.Text, "\n"), strings.TrimRight(m.Text, "\n")},
				{"HTML", strings.TrimRight(d.HTML, "\n"), m.HTML},
				{"MessageID", d.MessageID, "<" + m.NotificationID + "@gym.example>"},
				{"receipt", rcpt.ProviderMessageID, d.MessageID},
				{"notification header", d.Meta["notification_id"], m.NotificationID},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
				}
			}
			if len(d.Attachments) != len(tt.wantTypes) {
				t.Fatalf("attachments = %q, want %d", d.Attachments, len(tt.wantTypes))
			}
			for name, want := range tt.wantTypes {
				got := d.Meta["attachment_type:"+name]
				// go-mail appends name="…"; the parameters herald set must come first.
				if !strings.HasPrefix(got, want+";") {
					t.Errorf("attachment %s content type = %q, want prefix %q", name, got, want)
				}
			}
		})
	}
}

func TestMessageIDIsDerivedFromNotificationID(t *testing.T) {
	f := startSink(t, smtpsink.Options{}, false)
	cfg := f.config()
	s := newSender(t, cfg)
	cfg.MessageIDDomain = "mail.gym.example"
	other := newSender(t, cfg)

	send := func(s *email.Sender, id string) string {
		t.Helper()
		r, err := s.Send(context.Background(), message(id))
		if err != nil {
			t.Fatal(err)
		}
		return r.ProviderMessageID
	}
	first := send(s, "ntf_0123abcd")
	again := send(s, "ntf_0123abcd")
	different := send(s, "ntf_4567ef01")
	custom := send(other, "ntf_0123abcd")

	if first != "<ntf_0123abcd@gym.example>" {
		t.Errorf("Message-ID = %q, want <ntf_0123abcd@gym.example>", first)
	}
	if again != first {
		t.Errorf("same notification, Message-IDs %q and %q differ", first, again)
	}
	if different == first {
		t.Errorf("different notifications share Message-ID %q", first)
	}
	if custom != "<ntf_0123abcd@mail.gym.example>" {
		t.Errorf("with MessageIDDomain, Message-ID = %q", custom)
	}
	for i, d := range f.outbox.All() {
		if d.MessageID != []string{first, again, different, custom}[i] {
			t.Errorf("delivery %d has Message-ID %q", i, d.MessageID)
		}
	}
}

func TestSendClassifiesServerReplies(t *testing.T) {
	tests := []struct {
		name       string
		inject     func(s *smtpsink.Sink) error
		class      failure.Class
		reason     failure.Reason
		wantDialed int // connections after the failed send and one more good one
	}{
		{
			name:   "RCPT 451 is retryable",
			inject: func(s *smtpsink.Sink) error { return s.FailNext(1, 451, "4.3.0", "Try again later") },
			class:  failure.Retryable, reason: failure.ReasonUnavailable, wantDialed: 1,
		},
		{
			name:   "RCPT 452 is retryable",
			inject: func(s *smtpsink.Sink) error { return s.FailNext(1, 452, "4.2.2", "Mailbox full, try later") },
			class:  failure.Retryable, reason: failure.ReasonUnavailable, wantDialed: 1,
		},
		{
			name: "RCPT 550 5.1.1 is an invalid address",
			inject: func(s *smtpsink.Sink) error {
				return s.FailAddress("ana@example.com", 550, "5.1.1", "<ana@example.com>: Recipient address rejected: User unknown")
			},
			class: failure.Permanent, reason: failure.ReasonInvalidAddress, wantDialed: 1,
		},
		{
			name:   "RCPT 550 without an enhanced code is an invalid address",
			inject: func(s *smtpsink.Sink) error { return s.FailNext(1, 550, "", "No such user") },
			class:  failure.Permanent, reason: failure.ReasonInvalidAddress, wantDialed: 1,
		},
		{
			name:   "RCPT 553 5.1.3 is an invalid address",
			inject: func(s *smtpsink.Sink) error { return s.FailNext(1, 553, "5.1.3", "Bad recipient address syntax") },
			class:  failure.Permanent, reason: failure.ReasonInvalidAddress, wantDialed: 1,
		},
		{
			name:   "RCPT 550 5.7.1 is a rejection, not an invalid address",
			inject: func(s *smtpsink.Sink) error { return s.FailNext(1, 550, "5.7.1", "Relay access denied") },
			class:  failure.Permanent, reason: failure.ReasonRejected, wantDialed: 1,
		},
		{
			name:   "RCPT 554 is a rejection",
			inject: func(s *smtpsink.Sink) error { return s.FailNext(1, 554, "5.7.1", "Rejected by policy") },
			class:  failure.Permanent, reason: failure.ReasonRejected, wantDialed: 1,
		},
		{
			name:   "DATA 451 is retryable",
			inject: func(s *smtpsink.Sink) error { return s.FailNextData(1, 451, "4.7.1", "Greylisted") },
			class:  failure.Retryable, reason: failure.ReasonUnavailable, wantDialed: 1,
		},
		{
			name:   "DATA 550 5.7.1 spam verdict is a rejection",
			inject: func(s *smtpsink.Sink) error { return s.FailNextData(1, 550, "5.7.1", "Message looks like spam") },
			class:  failure.Permanent, reason: failure.ReasonRejected, wantDialed: 1,
		},
		{
			name:   "DATA 554 is a rejection",
			inject: func(s *smtpsink.Sink) error { return s.FailNextData(1, 554, "5.6.0", "Content rejected") },
			class:  failure.Permanent, reason: failure.ReasonRejected, wantDialed: 1,
		},
		{
			name:   "DATA 550 5.1.1 (late recipient check) is an invalid address",
			inject: func(s *smtpsink.Sink) error { return s.FailNextData(1, 550, "5.1.1", "User unknown") },
			class:  failure.Permanent, reason: failure.ReasonInvalidAddress, wantDialed: 1,
		},
		{
			name:   "RCPT 421 is retryable and drops the connection",
			inject: func(s *smtpsink.Sink) error { return s.FailNext(1, 421, "4.3.2", "Shutting down") },
			class:  failure.Retryable, reason: failure.ReasonUnavailable, wantDialed: 2,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startSink(t, smtpsink.Options{}, false)
			cfg := f.config()
			cfg.PoolSize = 1
			s := newSender(t, cfg)
			if err := tt.inject(f.sink); err != nil {
				t.Fatal(err)
			}
			m := message(fmt.Sprintf("ntf_reply%d", i))
			_, err := s.Send(context.Background(), m)
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			if c, r := failure.ClassOf(err), failure.ReasonOf(err); c != tt.class || r != tt.reason {
				t.Errorf("got %s/%s, want %s/%s (%v)", c, r, tt.class, tt.reason, err)
			}
			if strings.Contains(strings.ToLower(err.Error()), m.To) {
				t.Errorf("error names the recipient: %v", err)
			}
			if n := f.outbox.Len(); n != 0 {
				t.Errorf("outbox has %d deliveries after a refusal", n)
			}

			// The session is left clean: the next message goes out, on the
			// same connection unless the server hung up.
			f.sink.ClearFaults()
			if _, err := s.Send(context.Background(), message(fmt.Sprintf("ntf_after%d", i))); err != nil {
				t.Fatalf("next Send: %v", err)
			}
			if got := f.sink.Connections(); got != tt.wantDialed {
				t.Errorf("connections = %d, want %d", got, tt.wantDialed)
			}
		})
	}
}

func TestSendRejectsUnsendableMessages(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(m *channels.Message)
		reason failure.Reason
	}{
		{"empty address", func(m *channels.Message) { m.To = "" }, failure.ReasonInvalidAddress},
		{"no @", func(m *channels.Message) { m.To = "ana.example.com" }, failure.ReasonInvalidAddress},
		{"display name in To", func(m *channels.Message) { m.To = "Ana <ana@example.com>" }, failure.ReasonInvalidAddress},
		{"header injection", func(m *channels.Message) { m.To = "ana@example.com\r\nBcc: eve@example.com" }, failure.ReasonInvalidAddress},
		{"two addresses", func(m *channels.Message) { m.To = "ana@example.com, eve@example.com" }, failure.ReasonInvalidAddress},
		{"no body", func(m *channels.Message) { m.Text, m.HTML = "", "" }, failure.ReasonRender},
		{"attachment without name", func(m *channels.Message) {
			m.Attachments = []channels.Attachment{{Data: []byte("x")}}
		}, failure.ReasonRender},
		{"attachment with bad content type", func(m *channels.Message) {
			m.Attachments = []channels.Attachment{{Filename: "a.bin", ContentType: "not a type", Data: []byte("x")}}
		}, failure.ReasonRender},
		{"no notification id", func(m *channels.Message) { m.NotificationID = "" }, failure.ReasonInvalid},
		{"notification id unfit for a Message-ID", func(m *channels.Message) { m.NotificationID = "ntf <1>" }, failure.ReasonInvalid},
	}
	f := startSink(t, smtpsink.Options{}, false)
	s := newSender(t, f.config())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := message("ntf_bad")
			tt.edit(m)
			_, err := s.Send(context.Background(), m)
			if c, r := failure.ClassOf(err), failure.ReasonOf(err); err == nil || c != failure.Permanent || r != tt.reason {
				t.Errorf("got %v (%s/%s), want permanent/%s", err, c, r, tt.reason)
			}
		})
	}
	if n := f.sink.Connections(); n != 0 {
		t.Errorf("unsendable messages opened %d connections", n)
	}
}

func TestTLS(t *testing.T) {
	tests := []struct {
		name      string
		plainSink bool
		mode      email.TLSMode
		noRoots   bool
		wantErr   bool
	}{
		{name: "mandatory with STARTTLS", mode: email.TLSMandatory},
		{name: "default is mandatory", plainSink: true, mode: "", wantErr: true},
		{name: "mandatory without STARTTLS", plainSink: true, mode: email.TLSMandatory, wantErr: true},
		{name: "mandatory with an untrusted certificate", mode: email.TLSMandatory, noRoots: true, wantErr: true},
		{name: "opportunistic without STARTTLS", plainSink: true, mode: email.TLSOpportunistic},
		{name: "opportunistic with STARTTLS", mode: email.TLSOpportunistic},
		{name: "none", plainSink: true, mode: email.TLSNone},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startSink(t, smtpsink.Options{}, tt.plainSink)
			cfg := f.config()
			cfg.TLS = tt.mode
			if tt.noRoots {
				cfg.TLSConfig = nil
			}
			s := newSender(t, cfg)
			_, err := s.Send(context.Background(), message(fmt.Sprintf("ntf_tls%d", i)))
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			// Not the message's fault: retryable, so nothing is lost while
			// the operator fixes the server or the configuration.
			if c, r := failure.ClassOf(err), failure.ReasonOf(err); err == nil || c != failure.Retryable || r != failure.ReasonNetwork {
				t.Fatalf("got %v (%s/%s), want retryable/network", err, c, r)
			}
			if f.outbox.Len() != 0 {
				t.Error("message was delivered without TLS")
			}
		})
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name       string
		user, pass string
		reason     failure.Reason // "" for success
	}{
		{name: "right credentials", user: "herald", pass: "s3cret"},
		{name: "wrong password", user: "herald", pass: "rotated", reason: failure.ReasonAuth},
		{name: "no credentials", reason: failure.ReasonAuth},
	}
	f := startSink(t, smtpsink.Options{Username: "herald", Password: "s3cret"}, false)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config()
			cfg.Username, cfg.Password = tt.user, tt.pass
			s := newSender(t, cfg)
			_, err := s.Send(context.Background(), message(fmt.Sprintf("ntf_auth%d", i)))
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			// Retryable on purpose: a credential rotation must not drop mail.
			if c, r := failure.ClassOf(err), failure.ReasonOf(err); err == nil || c != failure.Retryable || r != tt.reason {
				t.Fatalf("got %v (%s/%s), want retryable/%s", err, c, r, tt.reason)
			}
			if strings.Contains(err.Error(), tt.pass) && tt.pass != "" {
				t.Errorf("error contains the password: %v", err)
			}
		})
	}
}

func TestPoolReusesConnections(t *testing.T) {
	tests := []struct {
		name        string
		poolSize    int
		concurrency int
		sends       int
	}{
		{name: "sequential", poolSize: 4, concurrency: 1, sends: 50},
		{name: "concurrent, pool of 1", poolSize: 1, concurrency: 8, sends: 50},
		{name: "concurrent, pool of 3", poolSize: 3, concurrency: 16, sends: 50},
		{name: "concurrent, pool of 8", poolSize: 8, concurrency: 8, sends: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startSink(t, smtpsink.Options{}, false)
			cfg := f.config()
			cfg.PoolSize = tt.poolSize
			s := newSender(t, cfg)

			ids := make(chan string, tt.sends)
			for i := range tt.sends {
				ids <- fmt.Sprintf("ntf_pool%04d", i)
			}
			close(ids)
			var wg sync.WaitGroup
			errs := make(chan error, tt.sends)
			for range tt.concurrency {
				wg.Go(func() {
					for id := range ids {
						if _, err := s.Send(context.Background(), message(id)); err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}

			if got := f.outbox.Len(); got != tt.sends {
				t.Errorf("outbox has %d deliveries, want %d", got, tt.sends)
			}
			seen := map[string]bool{}
			for _, d := range f.outbox.All() {
				if seen[d.MessageID] {
					t.Errorf("Message-ID %s delivered twice", d.MessageID)
				}
				seen[d.MessageID] = true
			}
			want := min(tt.poolSize, tt.concurrency)
			if got := f.sink.Connections(); got > want || got < 1 {
				t.Errorf("%d sends used %d connections, want 1..%d", tt.sends, got, want)
			}
		})
	}
}

func TestOutage(t *testing.T) {
	f := startSink(t, smtpsink.Options{}, false)
	cfg := f.config()
	cfg.PoolSize = 1
	s := newSender(t, cfg)
	send := func(id string) error {
		_, err := s.Send(context.Background(), message(id))
		return err
	}
	if err := send("ntf_before"); err != nil {
		t.Fatal(err)
	}

	// The server goes away: the pooled connection breaks and redialling is
	// refused.
	if err := f.sink.Refuse(true); err != nil {
		t.Fatal(err)
	}
	err := send("ntf_during")
	if c, r := failure.ClassOf(err), failure.ReasonOf(err); err == nil || c != failure.Retryable || r != failure.ReasonNetwork {
		t.Fatalf("during outage: got %v (%s/%s), want retryable/network", err, c, r)
	}

	if err := f.sink.Refuse(false); err != nil {
		t.Fatal(err)
	}
	if err := send("ntf_after"); err != nil {
		t.Fatalf("after outage: %v", err)
	}
	if got := f.outbox.Len(); got != 2 {
		t.Errorf("outbox has %d deliveries, want 2", got)
	}
}

func TestStaleConnectionIsRedialled(t *testing.T) {
	f := startSink(t, smtpsink.Options{}, false)
	cfg := f.config()
	cfg.PoolSize = 1
	s := newSender(t, cfg)
	if _, err := s.Send(context.Background(), message("ntf_first")); err != nil {
		t.Fatal(err)
	}
	// A restart between two messages kills the idle pooled connection; the
	// next Send must notice before anything was sent and use a new one.
	if err := f.sink.Refuse(true); err != nil {
		t.Fatal(err)
	}
	if err := f.sink.Refuse(false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(context.Background(), message("ntf_second")); err != nil {
		t.Fatalf("Send after restart: %v", err)
	}
	if got := f.sink.Connections(); got != 2 {
		t.Errorf("connections = %d, want 2", got)
	}
	if got := f.outbox.Len(); got != 2 {
		t.Errorf("outbox has %d deliveries, want 2", got)
	}
}

// silentServer accepts connections and never says a word, like a server
// that hangs. Each accepted connection is reported on the returned channel.
func silentServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 16)
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			ch <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String(), ch
}

func TestSendHonoursContext(t *testing.T) {
	config := func(addr string) email.Config {
		return email.Config{Addr: addr, From: from, PoolSize: 1, Timeout: time.Minute}
	}
	wantTimeout := func(t *testing.T, err error, cause error) {
		t.Helper()
		if c, r := failure.ClassOf(err), failure.ReasonOf(err); err == nil || c != failure.Retryable || r != failure.ReasonTimeout {
			t.Fatalf("got %v (%s/%s), want retryable/timeout", err, c, r)
		}
		if cause != nil && !errors.Is(err, cause) {
			t.Errorf("error does not wrap %v: %v", cause, err)
		}
	}

	t.Run("deadline", func(t *testing.T) {
		addr, _ := silentServer(t)
		s := newSender(t, config(addr))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := s.Send(ctx, message("ntf_deadline"))
		wantTimeout(t, err, context.DeadlineExceeded)
	})

	t.Run("Config.Timeout", func(t *testing.T) {
		addr, _ := silentServer(t)
		cfg := config(addr)
		cfg.Timeout = 200 * time.Millisecond
		s := newSender(t, cfg)
		_, err := s.Send(context.Background(), message("ntf_timeout"))
		wantTimeout(t, err, nil)
	})

	t.Run("cancel", func(t *testing.T) {
		addr, accepted := silentServer(t)
		s := newSender(t, config(addr))
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-accepted // the Send is now waiting for the greeting
			cancel()
		}()
		_, err := s.Send(ctx, message("ntf_cancel"))
		wantTimeout(t, err, context.Canceled)
	})

	t.Run("waiting for a pooled connection", func(t *testing.T) {
		addr, accepted := silentServer(t)
		s := newSender(t, config(addr))
		holder, release := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = s.Send(holder, message("ntf_holder")) // holds the only slot
		}()
		<-accepted
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := s.Send(ctx, message("ntf_waiter"))
		wantTimeout(t, err, context.DeadlineExceeded)
		release()
		<-done
	})
}

func TestClose(t *testing.T) {
	f := startSink(t, smtpsink.Options{}, false)
	s, err := email.New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(context.Background(), message("ntf_open")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Send(context.Background(), message("ntf_closed"))
	if err == nil || !failure.IsRetryable(err) {
		t.Errorf("Send after Close: got %v, want a retryable error", err)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := email.New(email.Config{From: from})
	var ce *email.ConfigError
	if !errors.As(err, &ce) || ce.Field != "Addr" {
		t.Fatalf("New with no Addr: got %v, want a ConfigError for Addr", err)
	}
}
