package email_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/email"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/gateway"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/prefs/unsubscribe"
	"github.com/gymhq/herald/templates"
)

// rawSink is an SMTP server that keeps each message as it arrived, headers
// and all: what a mailbox provider reads.
type rawSink struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (s *rawSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &rawSession{s}, nil }

type rawSession struct{ s *rawSink }

func (r *rawSession) Reset()                               {}
func (r *rawSession) Logout() error                        { return nil }
func (r *rawSession) Mail(string, *smtp.MailOptions) error { return nil }
func (r *rawSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (r *rawSession) Data(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	r.s.mu.Lock()
	r.s.msgs = append(r.s.msgs, b)
	r.s.mu.Unlock()
	return err
}

func (s *rawSink) last(t *testing.T) *mail.Message {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.msgs) == 0 {
		t.Fatal("no message arrived")
	}
	m, err := mail.ReadMessage(bytes.NewReader(s.msgs[len(s.msgs)-1]))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func startRawSink(t *testing.T) (*rawSink, string) {
	t.Helper()
	sink := &rawSink{}
	srv := smtp.NewServer(sink)
	srv.Domain, srv.ErrorLog = "localhost", log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sink, ln.Addr().String()
}

// TestOneClickUnsubscribeHeaders: an email of a category its recipient may
// switch off carries List-Unsubscribe with a signed link and
// List-Unsubscribe-Post (RFC 8058), and a mailbox provider's POST to that
// link, against the gateway's handler, switches the category off by email
// for that person. A transactional email, or any email while the links are
// not configured, carries neither header.
func TestOneClickUnsubscribeHeaders(t *testing.T) {
	set, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := unsubscribe.NewSigner([]byte("an-unsubscribe-secret-of-32-bytes!"), 0)
	if err != nil {
		t.Fatal(err)
	}
	store := prefs.NewMemory()
	g, err := gateway.New(gateway.Options{
		Feed: feed.NewMemory(feed.Limits{}),
		Authenticate: func(*http.Request) (string, time.Time, error) {
			return "", time.Time{}, errors.New("no session needed for a link")
		},
		Preferences: store, Templates: func() *templates.Set { return set }, Unsubscribe: signer,
	})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(g.Handler())
	t.Cleanup(gw.Close)

	sink, addr := startRawSink(t)
	cfg := email.Config{Addr: addr, From: from, TLS: email.TLSNone, Timeout: 10 * time.Second, HeloName: "herald.test",
		Unsubscribe: &email.UnsubscribeLinks{Signer: signer, PublicURL: gw.URL}}
	s := newSender(t, cfg)
	cfg.Unsubscribe = nil
	without := newSender(t, cfg)

	send := func(s *email.Sender, id string, edit func(m *channels.Message)) *mail.Message {
		t.Helper()
		m := message(id)
		m.RecipientID, m.Category, m.Unsubscribable = "mem_ana", "marketing", true
		if edit != nil {
			edit(m)
		}
		if _, err := s.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		return sink.last(t)
	}

	got := send(s, "ntf_unsub1", nil)
	list, post := got.Header.Get("List-Unsubscribe"), got.Header.Get("List-Unsubscribe-Post")
	if post != "List-Unsubscribe=One-Click" || !strings.HasPrefix(list, "<"+gw.URL+unsubscribe.Path+"?token=") || !strings.HasSuffix(list, ">") {
		t.Fatalf("List-Unsubscribe %q, List-Unsubscribe-Post %q", list, post)
	}
	link := strings.Trim(list, "<>")
	// What a mailbox provider does with it (RFC 8058 section 3.2).
	res, err := http.Post(link, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("POST %s: %d", link, res.StatusCode)
	}
	p, _ := store.Get(context.Background(), "mem_ana")
	if allow, ok := p.Allows("marketing", notification.Email); allow || !ok {
		t.Fatalf("after the one-click POST, marketing by email: %v, %v", allow, ok)
	}

	none := map[string]*mail.Message{
		"transactional": send(s, "ntf_unsub2", func(m *channels.Message) { m.Category, m.Unsubscribable = "transactional", false }),
		"no category":   send(s, "ntf_unsub3", func(m *channels.Message) { m.Category = "" }),
		"no recipient":  send(s, "ntf_unsub4", func(m *channels.Message) { m.RecipientID = "" }),
		"links off":     send(without, "ntf_unsub5", nil),
	}
	for name, m := range none {
		if v := m.Header.Get("List-Unsubscribe") + m.Header.Get("List-Unsubscribe-Post"); v != "" {
			t.Errorf("%s: unsubscribe headers %q", name, v)
		}
	}
}

// TestUnsubscriber: the links are on when both the secret and the public
// URL are set, and their lifetime is HERALD_UNSUBSCRIBE_TTL.
func TestUnsubscriber(t *testing.T) {
	c := &config.Config{}
	c.Gateway.UnsubscribeTTL = 48 * time.Hour
	l, err := email.Unsubscriber(c)
	if err != nil || l != nil {
		t.Fatalf("nothing set: %v, %v", l, err)
	}
	c.Gateway.UnsubscribeSecret, c.Gateway.PublicURL = "an-unsubscribe-secret-of-32-bytes!", "https://notify.example.com"
	l, err = email.Unsubscriber(c)
	if err != nil || l == nil || l.PublicURL != "https://notify.example.com" || l.Signer.TTL() != 48*time.Hour {
		t.Fatalf("both set: %+v, %v", l, err)
	}
}
