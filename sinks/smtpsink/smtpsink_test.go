package smtpsink_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/smtpsink"
)

type fixture struct {
	sink   *smtpsink.Sink
	outbox *sinks.Outbox
	client *tls.Config
}

func start(t *testing.T, opts smtpsink.Options) *fixture {
	t.Helper()
	serverTLS, roots, err := smtpsink.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	opts.TLS = serverTLS
	f := &fixture{outbox: sinks.NewOutbox(0), client: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	if f.sink, err = smtpsink.Start(f.outbox, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.sink.Close() })
	return f
}

// envelope is one SMTP transaction for send.
type envelope struct {
	auth sasl.Client
	from string
	to   []string
	raw  string
}

// send runs e over STARTTLS with go-smtp's client and returns the text of
// the reply to DATA.
func (f *fixture) send(t *testing.T, e envelope) (string, error) {
	t.Helper()
	c, err := smtp.DialStartTLS(f.sink.Addr(), f.client)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if e.auth != nil {
		if err := c.Auth(e.auth); err != nil {
			return "", err
		}
	}
	if e.from == "" {
		e.from = "no-reply@gym.example"
	}
	if err := c.Mail(e.from, nil); err != nil {
		return "", err
	}
	for _, to := range e.to {
		if err := c.Rcpt(to, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(strings.ReplaceAll(e.raw, "\n", "\r\n"))); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	_ = c.Quit()
	return resp.StatusText, nil
}

const plain = `From: Gym <no-reply@gym.example>
To: ana@example.com
Subject: Hello
Message-ID: <ntf_1@gym.example>

Hello Ana.
`

func TestRecordsDelivery(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want sinks.Delivery
	}{
		{
			name: "plain text",
			raw:  plain,
			want: sinks.Delivery{From: "Gym <no-reply@gym.example>", Subject: "Hello", Text: "Hello Ana.\n", MessageID: "<ntf_1@gym.example>"},
		},
		{
			name: "quoted-printable single part with encoded words",
			raw: `From: =?UTF-8?q?Gimnasio_Le=C3=B3n?= <no-reply@gym.example>
To: =?UTF-8?q?Ana_D=C3=ADaz?= <ana@example.com>
Subject: =?UTF-8?q?Reserva_confirmada_=E2=9C=93?=
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Tu plaza est=C3=A1 confirmada, una l=C3=ADnea muy larga que se parte en dos=
 l=C3=ADneas.
`,
			want: sinks.Delivery{
				From:    "Gimnasio León <no-reply@gym.example>",
				Subject: "Reserva confirmada ✓",
				Text:    "Tu plaza está confirmada, una línea muy larga que se parte en dos líneas.\n",
				Meta:    map[string]string{"header_to": "Ana Díaz <ana@example.com>"},
			},
		},
		{
			name: "mixed: alternative (QP text, base64 HTML) and a calendar attachment",
			raw: `From: no-reply@gym.example
To: ana@example.com
Subject: Invite
X-Herald-Notification-Id: ntf_2
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Hola=20Ana
--inner
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: base64

PHA+SG9sYSA8Yj5BbmE8L2I+PC9wPg==
--inner--

--outer
Content-Type: text/calendar; method=REQUEST; charset=UTF-8; name="invite.ics"
Content-Disposition: attachment; filename="invite.ics"
Content-Transfer-Encoding: base64

QkVHSU46VkNBTEVOREFSDQpFTkQ6VkNBTEVOREFSDQo=
--outer
Content-Type: application/pdf
Content-Disposition: attachment; filename*=UTF-8''recibo%20n%C2%BA1.pdf
Content-Transfer-Encoding: base64

JVBERi0=
--outer--
`,
			want: sinks.Delivery{
				From:        "no-reply@gym.example",
				Subject:     "Invite",
				Text:        "Hola Ana",
				HTML:        "<p>Hola <b>Ana</b></p>",
				Attachments: []string{"invite.ics", "recibo nº1.pdf"},
				Meta: map[string]string{
					"notification_id":                "ntf_2",
					"attachment_type:invite.ics":     `text/calendar; method=REQUEST; charset=UTF-8; name="invite.ics"`,
					"attachment_type:recibo nº1.pdf": "application/pdf",
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, smtpsink.Options{})
			reply, err := f.send(t, envelope{from: "bounces@gym.example", to: []string{"ana@example.com", "Front.Desk@gym.example"}, raw: tt.raw})
			if err != nil {
				t.Fatal(err)
			}
			all := f.outbox.All()
			if len(all) != 2 {
				t.Fatalf("got %d deliveries, want one per recipient (2)", len(all))
			}
			for i, d := range all {
				want := tt.want
				want.To = []string{"ana@example.com", "Front.Desk@gym.example"}[i]
				checks := []struct{ field, got, want string }{
					{"Channel", d.Channel, "email"},
					{"To", d.To, want.To},
					{"From", d.From, want.From},
					{"Subject", d.Subject, want.Subject},
					{"Text", d.Text, want.Text},
					{"HTML", d.HTML, want.HTML},
					{"envelope_from", d.Meta["envelope_from"], "bounces@gym.example"},
				}
				if want.MessageID != "" {
					checks = append(checks, struct{ field, got, want string }{"MessageID", d.MessageID, want.MessageID})
				}
				for k, v := range want.Meta {
					checks = append(checks, struct{ field, got, want string }{"Meta[" + k + "]", d.Meta[k], v})
				}
				for _, c := range checks {
					if c.got != c.want {
						t.Errorf("delivery %d: %s = %q, want %q", i, c.field, c.got, c.want)
					}
				}
				if !slices.Equal(d.Attachments, want.Attachments) && len(d.Attachments)+len(want.Attachments) > 0 {
					t.Errorf("delivery %d: Attachments = %q, want %q", i, d.Attachments, want.Attachments)
				}
				if d.ProviderID == "" || d.ProviderID != all[0].ProviderID {
					t.Errorf("delivery %d: ProviderID %q, want one queue id per message", i, d.ProviderID)
				}
			}
			if want := "2.0.0 OK: queued as " + all[0].ProviderID; reply != want {
				t.Errorf("DATA reply %q, want %q", reply, want)
			}
		})
	}
}

func TestQueueIDsAreUnique(t *testing.T) {
	f := start(t, smtpsink.Options{})
	for range 3 {
		if _, err := f.send(t, envelope{to: []string{"ana@example.com"}, raw: plain}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, d := range f.outbox.All() {
		if seen[d.ProviderID] {
			t.Errorf("queue id %s used twice", d.ProviderID)
		}
		seen[d.ProviderID] = true
	}
}

func TestRejectsUnparseableMessage(t *testing.T) {
	f := start(t, smtpsink.Options{})
	raw := "From: a@b.example\nContent-Type: multipart/mixed\n\nno boundary\n"
	_, err := f.send(t, envelope{to: []string{"ana@example.com"}, raw: raw})
	wantSMTPError(t, err, 554, smtp.EnhancedCode{5, 6, 0})
	if f.outbox.Len() != 0 {
		t.Error("unparseable message was recorded")
	}
}

func wantSMTPError(t *testing.T, err error, code int, enhanced smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want SMTP error %d", err, code)
	}
	if se.Code != code || se.EnhancedCode != enhanced {
		t.Errorf("got %d %v (%s), want %d %v", se.Code, se.EnhancedCode, se.Message, code, enhanced)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name     string
		inject   func(s *smtpsink.Sink) error
		to       string
		code     int // 0: this attempt succeeds
		enhanced smtp.EnhancedCode
	}{
		{
			name:   "FailNext fails RCPT",
			inject: func(s *smtpsink.Sink) error { return s.FailNext(1, 451, "4.3.0", "Try later") },
			to:     "ana@example.com", code: 451, enhanced: smtp.EnhancedCode{4, 3, 0},
		},
		{
			name:   "FailNext without an enhanced code",
			inject: func(s *smtpsink.Sink) error { return s.FailNext(1, 550, "", "No such user") },
			to:     "ana@example.com", code: 550, enhanced: smtp.EnhancedCode{5, 0, 0},
		},
		{
			name:   "FailNextData fails after DATA",
			inject: func(s *smtpsink.Sink) error { return s.FailNextData(1, 554, "5.7.1", "Spam") },
			to:     "ana@example.com", code: 554, enhanced: smtp.EnhancedCode{5, 7, 1},
		},
		{
			name:   "FailAddress fails that address",
			inject: func(s *smtpsink.Sink) error { return s.FailAddress("Ana@Example.com", 550, "5.1.1", "User unknown") },
			to:     "ana@example.com", code: 550, enhanced: smtp.EnhancedCode{5, 1, 1},
		},
		{
			name:   "FailAddress leaves other addresses alone",
			inject: func(s *smtpsink.Sink) error { return s.FailAddress("eve@example.com", 550, "5.1.1", "User unknown") },
			to:     "ana@example.com",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, smtpsink.Options{})
			if err := tt.inject(f.sink); err != nil {
				t.Fatal(err)
			}
			_, err := f.send(t, envelope{to: []string{tt.to}, raw: plain})
			if tt.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantSMTPError(t, err, tt.code, tt.enhanced)
			if f.outbox.Len() != 0 {
				t.Error("a refused message was recorded")
			}
		})
	}
}

func TestFailNextCountsDown(t *testing.T) {
	f := start(t, smtpsink.Options{})
	if err := f.sink.FailNext(2, 451, "4.3.0", ""); err != nil {
		t.Fatal(err)
	}
	for i, wantErr := range []bool{true, true, false, false} {
		_, err := f.send(t, envelope{to: []string{"ana@example.com"}, raw: plain})
		if (err != nil) != wantErr {
			t.Errorf("send %d: err = %v, want error %v", i, err, wantErr)
		}
	}
	if err := f.sink.FailAddress("ana@example.com", 550, "5.1.1", ""); err != nil {
		t.Fatal(err)
	}
	f.sink.ClearFaults()
	if _, err := f.send(t, envelope{to: []string{"ana@example.com"}, raw: plain}); err != nil {
		t.Errorf("after ClearFaults: %v", err)
	}
}

func TestFaultArgumentsAreChecked(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		enhanced string
	}{
		{"success code", 250, ""},
		{"not a code", 42, ""},
		{"malformed enhanced code", 550, "5.1"},
		{"non-numeric enhanced code", 550, "5.x.1"},
		{"enhanced class differs from code", 550, "4.1.1"},
	}
	f := start(t, smtpsink.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, inject := range map[string]func() error{
				"FailNext":     func() error { return f.sink.FailNext(1, tt.code, tt.enhanced, "") },
				"FailNextData": func() error { return f.sink.FailNextData(1, tt.code, tt.enhanced, "") },
				"FailAddress":  func() error { return f.sink.FailAddress("a@b.example", tt.code, tt.enhanced, "") },
			} {
				if inject() == nil {
					t.Errorf("%s accepted code %d %q", name, tt.code, tt.enhanced)
				}
			}
		})
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name     string
		auth     sasl.Client
		code     int
		enhanced smtp.EnhancedCode
	}{
		{name: "right credentials", auth: sasl.NewPlainClient("", "herald", "s3cret")},
		{name: "wrong password", auth: sasl.NewPlainClient("", "herald", "nope"), code: 535, enhanced: smtp.EnhancedCode{5, 7, 8}},
		{name: "foreign identity", auth: sasl.NewPlainClient("admin", "herald", "s3cret"), code: 535, enhanced: smtp.EnhancedCode{5, 7, 8}},
		{name: "no AUTH", code: 530, enhanced: smtp.EnhancedCode{5, 7, 0}},
	}
	f := start(t, smtpsink.Options{Username: "herald", Password: "s3cret"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.send(t, envelope{auth: tt.auth, to: []string{"ana@example.com"}, raw: plain})
			if tt.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantSMTPError(t, err, tt.code, tt.enhanced)
		})
	}
}

func TestAuthNeedsTLSUnlessAllowed(t *testing.T) {
	for _, allow := range []bool{false, true} {
		f := start(t, smtpsink.Options{Username: "u", Password: "p", AllowInsecureAuth: allow})
		c, err := smtp.Dial(f.sink.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Hello("test"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Extension("AUTH"); ok != allow {
			t.Errorf("AllowInsecureAuth=%v: AUTH offered before STARTTLS = %v", allow, ok)
		}
		_ = c.Close()
	}
}

func TestSelfSignedTLSVerifies(t *testing.T) {
	serverTLS, roots, err := smtpsink.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	f, err := smtpsink.Start(sinks.NewOutbox(0), smtpsink.Options{TLS: serverTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// go-smtp's client shakes hands lazily, on the command after STARTTLS.
	handshake := func(conf *tls.Config) error {
		c, err := smtp.DialStartTLS(f.Addr(), conf)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Noop()
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if err := handshake(&tls.Config{RootCAs: roots, ServerName: name}); err != nil {
			t.Errorf("ServerName %s: %v", name, err)
		}
	}
	var unknown x509.UnknownAuthorityError
	if err := handshake(&tls.Config{ServerName: "127.0.0.1"}); !errors.As(err, &unknown) {
		t.Errorf("without the pool: %v, want an unknown-authority error", err)
	}
}

func TestRefuse(t *testing.T) {
	f := start(t, smtpsink.Options{})
	addr := f.sink.Addr()
	open, err := smtp.DialStartTLS(addr, f.client)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	if err := f.sink.Refuse(true); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		_ = c.Close()
		t.Fatal("refusing sink accepted a connection")
	}
	if err := open.Noop(); err == nil {
		t.Error("a connection open before the outage still works")
	}

	if err := f.sink.Refuse(false); err != nil {
		t.Fatal(err)
	}
	if got := f.sink.Addr(); got != addr {
		t.Errorf("reopened on %s, want %s", got, addr)
	}
	if _, err := f.send(t, envelope{to: []string{"ana@example.com"}, raw: plain}); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
	if got := f.sink.Connections(); got != 2 {
		t.Errorf("Connections = %d, want 2", got)
	}
	if err := f.sink.Refuse(false); err != nil {
		t.Errorf("Refuse(false) while serving: %v", err)
	}
}

func TestCloseIsFinal(t *testing.T) {
	f := start(t, smtpsink.Options{})
	if err := f.sink.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.sink.Refuse(false); err == nil {
		t.Error("Refuse(false) reopened a closed sink")
	}
	if c, err := net.Dial("tcp", f.sink.Addr()); err == nil {
		_ = c.Close()
		t.Error("closed sink accepted a connection")
	}
}
