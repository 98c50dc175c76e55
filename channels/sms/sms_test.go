package sms_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/httperr"
	"github.com/gymhq/herald/channels/sms"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/twiliofake"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "s3cr3tT0ken0123456789abcdef01234"
	serviceSID = "MG0123456789abcdef0123456789abcdef"
	from       = "+441234567890"
	member     = "+447700900123"
)

var sidPattern = regexp.MustCompile(`^SM[0-9a-f]{32}$`)

type env struct {
	fake   *twiliofake.Fake
	outbox *sinks.Outbox
	srv    *httptest.Server
}

func newEnv(t testing.TB) *env {
	t.Helper()
	outbox := sinks.NewOutbox(1000)
	fake := twiliofake.New(outbox, twiliofake.Options{AccountSID: accountSID, AuthToken: authToken})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return &env{fake: fake, outbox: outbox, srv: srv}
}

func (e *env) config() sms.Config {
	return sms.Config{AccountSID: accountSID, AuthToken: authToken, From: from, APIURL: e.srv.URL}
}

func newSender(t testing.TB, cfg sms.Config) *sms.Sender {
	t.Helper()
	s, err := sms.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func message(to, text string) *channels.Message {
	return &channels.Message{NotificationID: "ntf_1", Channel: notification.SMS, To: to, Text: text}
}

func TestSend(t *testing.T) {
	tests := []struct {
		name     string
		cfg      func(sms.Config) sms.Config
		wantFrom string
		wantMeta map[string]string
	}{
		{
			name:     "from number",
			cfg:      func(c sms.Config) sms.Config { return c },
			wantFrom: from,
			wantMeta: map[string]string{},
		},
		{
			name:     "alphanumeric sender",
			cfg:      func(c sms.Config) sms.Config { c.From = "GymHQ"; return c },
			wantFrom: "GymHQ",
			wantMeta: map[string]string{},
		},
		{
			name: "messaging service",
			cfg: func(c sms.Config) sms.Config {
				c.From, c.MessagingServiceSID = "", serviceSID
				return c
			},
			wantFrom: serviceSID,
			wantMeta: map[string]string{"MessagingServiceSid": serviceSID},
		},
		{
			name:     "from within a messaging service",
			cfg:      func(c sms.Config) sms.Config { c.MessagingServiceSID = serviceSID; return c },
			wantFrom: from,
			wantMeta: map[string]string{"MessagingServiceSid": serviceSID},
		},
		{
			name: "validity period and status callback",
			cfg: func(c sms.Config) sms.Config {
				c.ValidityPeriod = 15 * time.Minute
				c.StatusCallback = "https://hooks.example.com/twilio?env=test"
				return c
			},
			wantFrom: from,
			wantMeta: map[string]string{"ValidityPeriod": "900", "StatusCallback": "https://hooks.example.com/twilio?env=test"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := newSender(t, tt.cfg(e.config()))
			text := "Spin 07:00 — you're in! 🎉"
			rcpt, err := s.Send(context.Background(), message(member, text))
			if err != nil {
				t.Fatal(err)
			}
			if !sidPattern.MatchString(rcpt.ProviderMessageID) {
				t.Errorf("ProviderMessageID = %q, want a message SID", rcpt.ProviderMessageID)
			}
			got := e.outbox.All()
			if len(got) != 1 {
				t.Fatalf("outbox has %d deliveries, want 1", len(got))
			}
			d := got[0]
			if d.Channel != "sms" || d.To != member || d.From != tt.wantFrom || d.Text != text || d.ProviderID != rcpt.ProviderMessageID {
				t.Errorf("delivery = %+v", d)
			}
			if fmt.Sprint(d.Meta) != fmt.Sprint(tt.wantMeta) {
				t.Errorf("meta = %v, want %v", d.Meta, tt.wantMeta)
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	const unknownNumber = "+15005550001"
	tests := []struct {
		name   string
		setup  func(*env, *sms.Config)
		to     string
		class  failure.Class
		reason failure.Reason
		code   int // Twilio code ReasonCode must report; 0 for none
		status int // HTTP status httperr.Status must report; 0 for none
	}{
		{"invalid number", func(e *env, _ *sms.Config) { e.fake.FailNumber(member, 400, 21211, "") },
			member, failure.Permanent, failure.ReasonInvalidAddress, 21211, 400},
		// Refused before Twilio is called (package address), so no code and no status.
		{"malformed number refused before twilio", nil,
			"+1555", failure.Permanent, failure.ReasonInvalidAddress, 0, 0},
		{"national number refused before twilio", nil,
			"07700900123", failure.Permanent, failure.ReasonInvalidAddress, 0, 0},
		{"premium number refused by default", nil,
			"+19005550100", failure.Permanent, failure.ReasonDestinationDenied, 0, 0},
		{"uk premium number refused by default", nil,
			"+449091234567", failure.Permanent, failure.ReasonDestinationDenied, 0, 0},
		{"country not allowed", func(_ *env, c *sms.Config) { c.Policy = &address.SMSPolicy{Allowed: []string{"+44"}} },
			unknownNumber, failure.Permanent, failure.ReasonDestinationDenied, 0, 0},
		{"allowed country", func(_ *env, c *sms.Config) { c.Policy = &address.SMSPolicy{Allowed: []string{"+1500"}} },
			unknownNumber, 0, "", 0, 0},
		{"unsubscribed", func(e *env, _ *sms.Config) { e.fake.FailNumber(member, 400, 21610, "") },
			member, failure.Permanent, failure.ReasonUnsubscribed, 21610, 400},
		{"not a mobile", func(e *env, _ *sms.Config) { e.fake.FailNumber(member, 400, 21614, "") },
			member, failure.Permanent, failure.ReasonInvalidAddress, 21614, 400},
		{"region not enabled", func(e *env, _ *sms.Config) { e.fake.FailNumber(member, 400, 21408, "") },
			member, failure.Permanent, failure.ReasonRejected, 21408, 400},
		{"unreachable", func(e *env, _ *sms.Config) { e.fake.FailNumber(member, 400, 21612, "") },
			member, failure.Permanent, failure.ReasonRejected, 21612, 400},
		{"other 4xx code", func(e *env, _ *sms.Config) { e.fake.FailNumber(member, 400, 21617, "") },
			member, failure.Permanent, failure.ReasonRejected, 21617, 400},
		{"rate limited", func(e *env, _ *sms.Config) { e.fake.FailNext(1, 429, 20429) },
			member, failure.Retryable, failure.ReasonRateLimited, 20429, 429},
		{"429 with another code", func(e *env, _ *sms.Config) { e.fake.FailNext(1, 429, 14107) },
			member, failure.Retryable, failure.ReasonRateLimited, 14107, 429},
		{"service unavailable", func(e *env, _ *sms.Config) { e.fake.FailNext(1, 503, 0) },
			member, failure.Retryable, failure.ReasonUnavailable, 20503, 503},
		{"internal error", func(e *env, _ *sms.Config) { e.fake.FailNext(1, 500, 20500) },
			member, failure.Retryable, failure.ReasonUnavailable, 20500, 500},
		{"wrong auth token", func(_ *env, c *sms.Config) { c.AuthToken = "wrongtoken" },
			member, failure.Retryable, failure.ReasonAuth, 20003, 401},
		{"wrong account", func(_ *env, c *sms.Config) { c.AccountSID = "AC" + strings.Repeat("f", 32) },
			member, failure.Retryable, failure.ReasonAuth, 20003, 401},
		{"forbidden without known code", func(e *env, _ *sms.Config) { e.fake.FailNext(1, 403, 20403) },
			member, failure.Retryable, failure.ReasonAuth, 20403, 403},
		{"html from a proxy on 502", func(e *env, _ *sms.Config) { e.fake.FailNextBody(1, 502, "<html>Bad Gateway</html>") },
			member, failure.Retryable, failure.ReasonUnavailable, 0, 502},
		{"html on 400 is not twilio judging the message", func(e *env, _ *sms.Config) { e.fake.FailNextBody(1, 400, "<html>Bad Request</html>") },
			member, failure.Retryable, failure.ReasonUnavailable, 0, 400},
		{"json without a twilio code", func(e *env, _ *sms.Config) { e.fake.FailNextBody(1, 400, `{"error":"nope"}`) },
			member, failure.Retryable, failure.ReasonUnavailable, 0, 400},
		// A success that is not Twilio's answer (a proxy's page, a wrong
		// HERALD_TWILIO_API_URL): the message may be out, so it is not
		// sent again; it is dead-lettered for a replay once checked.
		{"html on 201 is not sent again", func(e *env, _ *sms.Config) { e.fake.FailNextBody(1, 201, "<html>OK</html>") },
			member, failure.Permanent, failure.ReasonRejected, 0, 201},
		{"201 without a sid is not sent again", func(e *env, _ *sms.Config) { e.fake.FailNextBody(1, 201, `{"status":"queued"}`) },
			member, failure.Permanent, failure.ReasonRejected, 0, 201},
		{"unknown number is fine", nil,
			unknownNumber, 0, "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := e.config()
			if tt.setup != nil {
				tt.setup(e, &cfg)
			}
			s := newSender(t, cfg)
			_, err := s.Send(context.Background(), message(tt.to, "hello"))
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if c, r := failure.ClassOf(err), failure.ReasonOf(err); c != tt.class || r != tt.reason {
				t.Errorf("got %v/%v, want %v/%v (%v)", c, r, tt.class, tt.reason, err)
			}
			code, ok := sms.ReasonCode(err)
			if code != tt.code || ok != (tt.code != 0) {
				t.Errorf("ReasonCode = %d, %v; want %d", code, ok, tt.code)
			}
			if st, _ := httperr.Status(err); st != tt.status {
				t.Errorf("status = %d, want %d", st, tt.status)
			}
			if strings.Contains(err.Error(), tt.to) {
				t.Errorf("error text %q quotes the recipient's number", err)
			}
			if tt.code == 0 && tt.status == 0 && e.fake.Requests() != 0 {
				t.Errorf("Twilio got %d requests for a number refused before sending", e.fake.Requests())
			}
		})
	}
}

func TestSendFailureThenRecovery(t *testing.T) {
	e := newEnv(t)
	s := newSender(t, e.config())
	e.fake.FailNext(2, 503, 0)
	for i := range 2 {
		if _, err := s.Send(context.Background(), message(member, "hi")); !failure.IsRetryable(err) {
			t.Fatalf("attempt %d: %v, want retryable", i, err)
		}
	}
	if _, err := s.Send(context.Background(), message(member, "hi")); err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	if e.fake.Requests() != 3 || e.fake.Accepted() != 1 || e.outbox.Len() != 1 {
		t.Errorf("requests=%d accepted=%d outbox=%d", e.fake.Requests(), e.fake.Accepted(), e.outbox.Len())
	}
}

func TestSendLocalChecks(t *testing.T) {
	e := newEnv(t)
	s := newSender(t, e.config())
	tests := []struct {
		name   string
		m      *channels.Message
		reason failure.Reason
	}{
		{"no number", message("", "hi"), failure.ReasonInvalidAddress},
		{"no text", message(member, ""), failure.ReasonRejected},
	}
	for _, tt := range tests {
		_, err := s.Send(context.Background(), tt.m)
		if failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != tt.reason {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	if e.fake.Requests() != 0 {
		t.Errorf("%d requests reached Twilio", e.fake.Requests())
	}
}

func TestSendTransportErrors(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	cfg := sms.Config{AccountSID: accountSID, AuthToken: authToken, From: from}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		apiURL  string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		reason  failure.Reason
	}{
		{"config timeout", slow.URL, 50 * time.Millisecond, nil, failure.ReasonTimeout},
		{"context deadline", slow.URL, time.Minute, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, failure.ReasonTimeout},
		{"context already canceled", slow.URL, time.Minute, func() (context.Context, context.CancelFunc) {
			return canceled, func() {}
		}, failure.ReasonNetwork},
		{"connection refused", closed.URL, time.Minute, nil, failure.ReasonNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.APIURL, c.Timeout = tt.apiURL, tt.timeout
			s := newSender(t, c)
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			_, err := s.Send(ctx, message(member, "hi"))
			if !failure.IsRetryable(err) || failure.ReasonOf(err) != tt.reason {
				t.Errorf("got %v, want retryable %v", err, tt.reason)
			}
		})
	}
}

// TestAPIURLWithPathPrefix covers a staging proxy that serves Twilio under a
// path.
func TestAPIURLWithPathPrefix(t *testing.T) {
	outbox := sinks.NewOutbox(0)
	fake := twiliofake.New(outbox, twiliofake.Options{AccountSID: accountSID, AuthToken: authToken})
	srv := httptest.NewServer(http.StripPrefix("/twilio", fake))
	defer srv.Close()
	s := newSender(t, sms.Config{AccountSID: accountSID, AuthToken: authToken, From: from, APIURL: srv.URL + "/twilio/"})
	if _, err := s.Send(context.Background(), message(member, "hi")); err != nil {
		t.Fatal(err)
	}
	if outbox.Len() != 1 {
		t.Errorf("outbox has %d", outbox.Len())
	}
}

// TestIgnoresTwilioEdgeEnvironment: twilio-go reads TWILIO_EDGE and
// TWILIO_REGION and would rewrite the host to api.<edge>.<region>.twilio.com;
// where SMS go must depend on Config only.
func TestIgnoresTwilioEdgeEnvironment(t *testing.T) {
	t.Setenv("TWILIO_EDGE", "dublin")
	t.Setenv("TWILIO_REGION", "ie1")
	e := newEnv(t)
	s := newSender(t, e.config())
	if _, err := s.Send(context.Background(), message(member, "hi")); err != nil {
		t.Fatal(err)
	}
}

func TestSendConcurrent(t *testing.T) {
	e := newEnv(t)
	s := newSender(t, e.config())
	const workers, each = 16, 20
	e.fake.FailNumber("+447700900999", 400, 21610, "")
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		sids = map[string]bool{}
	)
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				to := fmt.Sprintf("+4477009%02d%03d", w, i)
				rcpt, err := s.Send(context.Background(), message(to, "hi"))
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				sids[rcpt.ProviderMessageID] = true
				mu.Unlock()
			}
			_, err := s.Send(context.Background(), message("+447700900999", "hi"))
			if failure.ReasonOf(err) != failure.ReasonUnsubscribed {
				errs <- fmt.Errorf("unsubscribed number: %v", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(sids) != workers*each || e.outbox.Len() != workers*each {
		t.Errorf("%d distinct sids, %d deliveries; want %d", len(sids), e.outbox.Len(), workers*each)
	}
}

// TestConnectionsReused: sends share pooled keep-alive connections.
func TestConnectionsReused(t *testing.T) {
	outbox := sinks.NewOutbox(0)
	fake := twiliofake.New(outbox, twiliofake.Options{AccountSID: accountSID, AuthToken: authToken})
	fake.FailNumber("+447700900666", 400, 21610, "")
	srv := httptest.NewUnstartedServer(fake)
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s := newSender(t, sms.Config{AccountSID: accountSID, AuthToken: authToken, From: from, APIURL: srv.URL})
	for i := range 20 {
		to := member
		if i%2 == 1 {
			to = "+447700900666" // error answers must not cost a connection either
		}
		_, _ = s.Send(context.Background(), message(to, "hi"))
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 20 sequential sends, want 1", n)
	}
}

func TestReasonCodeOtherErrors(t *testing.T) {
	for _, err := range []error{nil, errors.New("x"), failure.Perm(failure.ReasonRejected, nil)} {
		if code, ok := sms.ReasonCode(err); ok || code != 0 {
			t.Errorf("ReasonCode(%v) = %d, %v", err, code, ok)
		}
	}
}

func BenchmarkSend(b *testing.B) {
	e := newEnv(b)
	// baseline: the same request with plain net/http, to read the client
	// library's cost as a ratio.
	b.Run("baseline-net-http", func(b *testing.B) {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		endpoint := e.srv.URL + "/2010-04-01/Accounts/" + accountSID + "/Messages.json"
		form := url.Values{"To": {member}, "From": {from}, "Body": {"hello"}}.Encode()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(accountSID, authToken)
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body) // so the connection is reused
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Fatal(resp.Status)
			}
		}
	})
	s := newSender(b, e.config())
	m := message(member, "hello")
	b.Run("sender", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Send(context.Background(), m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sender-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Send(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// TestTransportErrorNamesTheURLCalled: with HERALD_TWILIO_API_URL set, an
// error from the connection names the URL herald called, not Twilio's,
// which would send an operator looking at the wrong host.
func TestTransportErrorNamesTheURLCalled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: the connection is refused
	cfg := sms.Config{AccountSID: accountSID, AuthToken: authToken, From: from, APIURL: "http://" + addr}
	_, err = newSender(t, cfg).Send(context.Background(), message(member, "hello"))
	if failure.ReasonOf(err) != failure.ReasonNetwork {
		t.Fatalf("Send: %v, want a network failure", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "http://"+addr+"/2010-04-01/Accounts/") || strings.Contains(msg, "api.twilio.com") {
		t.Errorf("error %q does not name the URL called, http://%s/…", msg, addr)
	}
}
