package push_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/httperr"
	"github.com/gymhq/herald/channels/push"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/fcmfake"
)

const (
	projectID = "herald-dev"
	device    = "dGVzdC1kZXZpY2UtdG9rZW4tMDAx:APA91bH-member-1"
)

// serviceAccount is generated once: RSA key generation is the slow part.
var serviceAccount = sync.OnceValues(fcmfake.NewServiceAccount)

// otherKey is a second, smaller key, for assertions the fake must refuse.
var otherKey = func() func(testing.TB) *rsa.PrivateKey {
	key := sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 1024) })
	return func(t testing.TB) *rsa.PrivateKey {
		k, err := key()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
}()

var namePattern = regexp.MustCompile(`^projects/herald-dev/messages/0:[0-9]+%[0-9a-f]{16}$`)

type env struct {
	fake   *fcmfake.Fake
	outbox *sinks.Outbox
	srv    *httptest.Server
	creds  []byte
}

func newEnv(t testing.TB, opts fcmfake.Options) *env {
	t.Helper()
	outbox := sinks.NewOutbox(1000)
	if opts.ProjectID == "" {
		opts.ProjectID = projectID
	}
	fake := fcmfake.New(outbox, opts)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	sa, err := serviceAccount()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := sa.JSON(srv.URL + fcmfake.TokenPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.TrustServiceAccount(creds); err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, outbox: outbox, srv: srv, creds: creds}
}

func (e *env) config() push.Config {
	return push.Config{ProjectID: projectID, CredentialsJSON: e.creds, Endpoint: e.srv.URL}
}

func newSender(t testing.TB, cfg push.Config) *push.Sender {
	t.Helper()
	s, err := push.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func message(token string, p notification.Priority) *channels.Message {
	return &channels.Message{
		NotificationID: "ntf_1",
		Channel:        notification.Push,
		To:             token,
		Priority:       p,
		Title:          "You're off the waitlist",
		Text:           "Spin 07:00 with Ana — see you there",
		Data:           map[string]string{"booking_id": "bk_42", "deeplink": "gym://bookings/bk_42"},
	}
}

func TestSend(t *testing.T) {
	tests := []struct {
		priority            notification.Priority
		android, apnsHeader string
	}{
		{notification.High, "HIGH", "10"},
		{notification.Normal, "NORMAL", "5"},
		{"", "NORMAL", "5"},
	}
	for _, tt := range tests {
		t.Run(string(tt.priority), func(t *testing.T) {
			e := newEnv(t, fcmfake.Options{})
			s := newSender(t, e.config())
			m := message(device, tt.priority)
			rcpt, err := s.Send(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if !namePattern.MatchString(rcpt.ProviderMessageID) {
				t.Errorf("ProviderMessageID = %q", rcpt.ProviderMessageID)
			}
			got := e.outbox.All()
			if len(got) != 1 {
				t.Fatalf("outbox has %d deliveries", len(got))
			}
			d := got[0]
			if d.Channel != "push" || d.To != device || d.Title != m.Title || d.Text != m.Text || d.ProviderID != rcpt.ProviderMessageID {
				t.Errorf("delivery = %+v", d)
			}
			want := map[string]string{
				"booking_id": "bk_42", "deeplink": "gym://bookings/bk_42",
				"android.priority": tt.android, "apns-priority": tt.apnsHeader,
			}
			if fmt.Sprint(d.Meta) != fmt.Sprint(want) {
				t.Errorf("meta = %v, want %v", d.Meta, want)
			}
		})
	}
}

// TestWireFormat pins the request FCM receives, byte for byte in JSON terms.
func TestWireFormat(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []*http.Request
		body [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen, body = append(seen, r), append(body, b)
		mu.Unlock()
		fmt.Fprint(w, `{"name":"projects/herald-dev/messages/0:1"}`)
	}))
	defer srv.Close()
	s := newSender(t, push.Config{
		ProjectID:   projectID,
		Endpoint:    srv.URL + "/",
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "static-token"}),
	})
	tests := []struct {
		m    *channels.Message
		want string
	}{
		{message(device, notification.High), `{"message":{"token":"` + device + `",` +
			`"notification":{"title":"You're off the waitlist","body":"Spin 07:00 with Ana — see you there"},` +
			`"data":{"booking_id":"bk_42","deeplink":"gym://bookings/bk_42"},` +
			`"android":{"priority":"HIGH"},"apns":{"headers":{"apns-priority":"10"}}}}`},
		{&channels.Message{To: device, Data: map[string]string{"sync": "1"}}, `{"message":{"token":"` + device + `",` +
			`"data":{"sync":"1"},"android":{"priority":"NORMAL"},"apns":{"headers":{"apns-priority":"5"}}}}`},
	}
	for i, tt := range tests {
		if _, err := s.Send(context.Background(), tt.m); err != nil {
			t.Fatal(err)
		}
		var got, want any
		if err := json.Unmarshal(body[i], &got); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal([]byte(tt.want), &want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("body\n got %s\nwant %s", body[i], tt.want)
		}
		r := seen[i]
		if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/herald-dev/messages:send" ||
			r.Header.Get("Authorization") != "Bearer static-token" ||
			r.Header.Get("Content-Type") != "application/json; charset=UTF-8" {
			t.Errorf("request %s %s %v", r.Method, r.URL.Path, r.Header)
		}
	}
}

// TestTokenURIHonoured serves the token endpoint on a different server from
// the send endpoint: tokens must come from the key file's token_uri, once,
// and be shared by every send.
func TestTokenURIHonoured(t *testing.T) {
	outbox := sinks.NewOutbox(0)
	fake := fcmfake.New(outbox, fcmfake.Options{ProjectID: projectID})
	var tokenHits, sendHits atomic.Int64
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenHits.Add(1)
		fake.ServeHTTP(w, r)
	}))
	defer tokenSrv.Close()
	sendSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == fcmfake.TokenPath {
			t.Error("token requested from the FCM endpoint, not token_uri")
		}
		sendHits.Add(1)
		fake.ServeHTTP(w, r)
	}))
	defer sendSrv.Close()
	sa, err := serviceAccount()
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := sa.JSON(tokenSrv.URL + fcmfake.TokenPath)
	if err := fake.TrustServiceAccount(creds); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(file, creds, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("sequential", func(t *testing.T) {
		before := fake.TokenRequests()
		s := newSender(t, push.Config{ProjectID: projectID, CredentialsFile: file, Endpoint: sendSrv.URL})
		for i := range 20 {
			if _, err := s.Send(context.Background(), message(fmt.Sprintf("%s-%d", device, i), notification.Normal)); err != nil {
				t.Fatal(err)
			}
		}
		if n := fake.TokenRequests() - before; n != 1 {
			t.Errorf("%d token requests for 20 sends, want 1", n)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		before := fake.TokenRequests()
		s := newSender(t, push.Config{ProjectID: projectID, CredentialsJSON: creds, Endpoint: sendSrv.URL})
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				if _, err := s.Send(context.Background(), message(fmt.Sprintf("%s-c%d", device, i), notification.High)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := fake.TokenRequests() - before; n != 1 {
			t.Errorf("%d token requests for 20 concurrent sends, want 1", n)
		}
	})
	if int(tokenHits.Load()) != fake.TokenRequests() || sendHits.Load() != 40 {
		t.Errorf("token server hits %d (fake counted %d), send server hits %d", tokenHits.Load(), fake.TokenRequests(), sendHits.Load())
	}
	if outbox.Len() != 40 {
		t.Errorf("outbox has %d", outbox.Len())
	}
}

func TestSendErrors(t *testing.T) {
	const gone = "dGVzdC1kZXZpY2UtdG9rZW4tZ29uZQ:APA91b-gone"
	tests := []struct {
		name         string
		opts         fcmfake.Options
		setup        func(*env, *push.Config)
		m            *channels.Message
		class        failure.Class
		reason       failure.Reason
		status       int
		retryAfter   time.Duration
		unregistered bool
	}{
		{name: "unregistered", setup: func(e *env, _ *push.Config) { e.fake.Unregister(gone) },
			m: message(gone, notification.High), class: failure.Permanent, reason: failure.ReasonTokenUnregistered, status: 404, unregistered: true},
		{name: "token FCM finds malformed", m: message("not/a%token!", notification.High),
			class: failure.Permanent, reason: failure.ReasonInvalidAddress, status: 400},
		// Refused before FCM is called (package address): no status.
		{name: "token with a space", m: message("not a token", notification.High),
			class: failure.Permanent, reason: failure.ReasonInvalidAddress},
		{name: "token with a bidi override", m: message("tok\u202een", notification.High),
			class: failure.Permanent, reason: failure.ReasonInvalidAddress},
		{name: "invalid argument not about the token", setup: func(e *env, _ *push.Config) { e.fake.FailToken(device, 400, "INVALID_ARGUMENT") },
			class: failure.Permanent, reason: failure.ReasonRejected, status: 400},
		{name: "reserved data key", m: &channels.Message{To: device, Text: "x", Data: map[string]string{"from": "gym"}},
			class: failure.Permanent, reason: failure.ReasonRejected, status: 400},
		{name: "payload too big", m: &channels.Message{To: device, Text: string(bytes.Repeat([]byte("x"), 5000))},
			class: failure.Permanent, reason: failure.ReasonRejected, status: 400},
		{name: "sender id mismatch", setup: func(e *env, _ *push.Config) { e.fake.FailToken(device, 403, "SENDER_ID_MISMATCH") },
			class: failure.Permanent, reason: failure.ReasonRejected, status: 403},
		{name: "quota exceeded with retry-after", opts: fcmfake.Options{RetryAfter: 30 * time.Second},
			setup: func(e *env, _ *push.Config) { e.fake.FailNext(1, 429, "QUOTA_EXCEEDED") },
			class: failure.Retryable, reason: failure.ReasonRateLimited, status: 429, retryAfter: 30 * time.Second},
		{name: "429 without fcm code", setup: func(e *env, _ *push.Config) { e.fake.FailNext(1, 429, "") },
			class: failure.Retryable, reason: failure.ReasonRateLimited, status: 429},
		{name: "unavailable with retry-after", opts: fcmfake.Options{RetryAfter: 5 * time.Second},
			setup: func(e *env, _ *push.Config) { e.fake.FailNext(1, 503, "UNAVAILABLE") },
			class: failure.Retryable, reason: failure.ReasonUnavailable, status: 503, retryAfter: 5 * time.Second},
		{name: "internal", setup: func(e *env, _ *push.Config) { e.fake.FailNext(1, 500, "INTERNAL") },
			class: failure.Retryable, reason: failure.ReasonUnavailable, status: 500},
		{name: "bad gateway", setup: func(e *env, _ *push.Config) { e.fake.FailNext(1, 502, "") },
			class: failure.Retryable, reason: failure.ReasonUnavailable, status: 502},
		{name: "apns auth error", setup: func(e *env, _ *push.Config) { e.fake.FailNext(1, 401, "THIRD_PARTY_AUTH_ERROR") },
			class: failure.Retryable, reason: failure.ReasonAuth, status: 401},
		{name: "html from a proxy", setup: func(e *env, _ *push.Config) { e.fake.FailNextBody(1, 502, "<html>Bad Gateway</html>") },
			class: failure.Retryable, reason: failure.ReasonUnavailable, status: 502},
		{name: "html 404 is not FCM judging the token", setup: func(e *env, _ *push.Config) { e.fake.FailNextBody(1, 404, "<html>Not Found</html>") },
			class: failure.Retryable, reason: failure.ReasonUnavailable, status: 404},
		{name: "json that is not google's", setup: func(e *env, _ *push.Config) { e.fake.FailNextBody(1, 400, `{"error":"bad"}`) },
			class: failure.Retryable, reason: failure.ReasonUnavailable, status: 400},
		// A success we cannot read may have sent the message: not sent again.
		{name: "html on 200 is not sent again", setup: func(e *env, _ *push.Config) { e.fake.FailNextBody(1, 200, "<html>OK</html>") },
			class: failure.Permanent, reason: failure.ReasonRejected, status: 200},
		{name: "200 without a message name is not sent again", setup: func(e *env, _ *push.Config) { e.fake.FailNextBody(1, 200, `{}`) },
			class: failure.Permanent, reason: failure.ReasonRejected, status: 200},
		{name: "project we may not send for", setup: func(_ *env, c *push.Config) { c.ProjectID = "someone-else" },
			class: failure.Retryable, reason: failure.ReasonAuth, status: 403},
		{name: "token endpoint refuses", setup: func(e *env, _ *push.Config) { e.fake.FailNextToken(1, 400) },
			class: failure.Retryable, reason: failure.ReasonAuth, status: 400},
		{name: "token endpoint down", setup: func(e *env, _ *push.Config) { e.fake.FailNextToken(1, 503) },
			class: failure.Retryable, reason: failure.ReasonUnavailable, status: 503},
		{name: "unknown service account", setup: func(e *env, c *push.Config) {
			sa, _ := serviceAccount()
			stranger := *sa
			stranger.ClientEmail = "stranger@herald-dev.iam.gserviceaccount.com"
			c.CredentialsJSON, _ = stranger.JSON(e.srv.URL + fcmfake.TokenPath)
		}, class: failure.Retryable, reason: failure.ReasonAuth, status: 400},
		{name: "assertion signed by another key", setup: func(e *env, c *push.Config) {
			sa, _ := serviceAccount()
			impostor := *sa
			impostor.Key = otherKey(t)
			c.CredentialsJSON, _ = impostor.JSON(e.srv.URL + fcmfake.TokenPath)
		}, class: failure.Retryable, reason: failure.ReasonAuth, status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			cfg := e.config()
			if tt.setup != nil {
				tt.setup(e, &cfg)
			}
			s := newSender(t, cfg)
			m := tt.m
			if m == nil {
				m = message(device, notification.High)
			}
			_, err := s.Send(context.Background(), m)
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if c, r := failure.ClassOf(err), failure.ReasonOf(err); c != tt.class || r != tt.reason {
				t.Errorf("got %v/%v, want %v/%v (%v)", c, r, tt.class, tt.reason, err)
			}
			if st, _ := httperr.Status(err); st != tt.status {
				t.Errorf("status = %d, want %d (%v)", st, tt.status, err)
			}
			if ra, _ := httperr.RetryAfter(err); ra != tt.retryAfter {
				t.Errorf("retry after = %v, want %v", ra, tt.retryAfter)
			}
			if push.IsUnregistered(err) != tt.unregistered {
				t.Errorf("IsUnregistered = %v", !tt.unregistered)
			}
			if e.outbox.Len() != 0 {
				t.Errorf("outbox has %d", e.outbox.Len())
			}
		})
	}
}

// TestRevokedTokenIsRenewed: an access token revoked before its expiry fails
// a send as retryable auth, and the next send fetches a new one — once,
// however many concurrent sends saw the refusal.
func TestRevokedTokenIsRenewed(t *testing.T) {
	e := newEnv(t, fcmfake.Options{})
	s := newSender(t, e.config())
	send := func() error {
		_, err := s.Send(context.Background(), message(device, notification.High))
		return err
	}
	if err := send(); err != nil {
		t.Fatal(err)
	}
	e.fake.RevokeTokens()
	if err := send(); failure.ReasonOf(err) != failure.ReasonAuth || !failure.IsRetryable(err) {
		t.Fatalf("after revocation: %v", err)
	}
	if err := send(); err != nil {
		t.Fatalf("after renewal: %v", err)
	}
	if n := e.fake.TokenRequests(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}

	// Concurrent sends holding the same revoked token: each fails as auth or,
	// starting after the renewal, succeeds; together they renew once.
	e.fake.RevokeTokens()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if err := send(); err != nil && (failure.ReasonOf(err) != failure.ReasonAuth || !failure.IsRetryable(err)) {
				t.Errorf("after revocation: %v", err)
			}
		})
	}
	wg.Wait()
	for range 3 {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.fake.TokenRequests(); n != 3 {
		t.Errorf("%d token requests, want 3", n)
	}
}

// TestAPNsAuthErrorKeepsToken: THIRD_PARTY_AUTH_ERROR is about APNs
// credentials, not our access token.
func TestAPNsAuthErrorKeepsToken(t *testing.T) {
	e := newEnv(t, fcmfake.Options{})
	s := newSender(t, e.config())
	e.fake.FailNext(1, 401, "THIRD_PARTY_AUTH_ERROR")
	if _, err := s.Send(context.Background(), message(device, notification.High)); failure.ReasonOf(err) != failure.ReasonAuth {
		t.Fatal(err)
	}
	if _, err := s.Send(context.Background(), message(device, notification.High)); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.TokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
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
	static := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"})

	tests := []struct {
		name     string
		cfg      push.Config
		deadline time.Duration
		reason   failure.Reason
	}{
		{"config timeout", push.Config{Endpoint: slow.URL, Timeout: 50 * time.Millisecond}, 0, failure.ReasonTimeout},
		{"context deadline", push.Config{Endpoint: slow.URL, Timeout: time.Minute}, 50 * time.Millisecond, failure.ReasonTimeout},
		{"connection refused", push.Config{Endpoint: closed.URL}, 0, failure.ReasonNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.ProjectID, cfg.TokenSource = projectID, static
			s := newSender(t, cfg)
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			_, err := s.Send(ctx, message(device, notification.High))
			if !failure.IsRetryable(err) || failure.ReasonOf(err) != tt.reason {
				t.Errorf("got %v, want retryable %v", err, tt.reason)
			}
		})
	}
	t.Run("token endpoint unreachable", func(t *testing.T) {
		sa, _ := serviceAccount()
		creds, _ := sa.JSON(closed.URL + "/token")
		s := newSender(t, push.Config{ProjectID: projectID, CredentialsJSON: creds, Endpoint: slow.URL})
		_, err := s.Send(context.Background(), message(device, notification.High))
		if !failure.IsRetryable(err) || failure.ReasonOf(err) != failure.ReasonNetwork {
			t.Errorf("got %v", err)
		}
	})
	t.Run("static token refused", func(t *testing.T) {
		e := newEnv(t, fcmfake.Options{})
		s := newSender(t, push.Config{ProjectID: projectID, Endpoint: e.srv.URL, TokenSource: static})
		_, err := s.Send(context.Background(), message(device, notification.High))
		if failure.ReasonOf(err) != failure.ReasonAuth || !failure.IsRetryable(err) {
			t.Errorf("got %v", err)
		}
	})
}

func TestSendNoToken(t *testing.T) {
	e := newEnv(t, fcmfake.Options{})
	s := newSender(t, e.config())
	_, err := s.Send(context.Background(), message("", notification.High))
	if failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != failure.ReasonInvalidAddress {
		t.Errorf("got %v", err)
	}
	if e.fake.SendRequests() != 0 || e.fake.TokenRequests() != 0 {
		t.Error("an empty token reached FCM")
	}
}

func TestSendConcurrent(t *testing.T) {
	e := newEnv(t, fcmfake.Options{})
	s := newSender(t, e.config())
	const workers, each = 32, 10
	e.fake.Unregister("dead-token-0000")
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		names = map[string]bool{}
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				p := notification.Normal
				if i%2 == 0 {
					p = notification.High
				}
				rcpt, err := s.Send(context.Background(), message(fmt.Sprintf("token-%02d-%02d", w, i), p))
				if err != nil {
					t.Error(err)
					continue
				}
				mu.Lock()
				names[rcpt.ProviderMessageID] = true
				mu.Unlock()
			}
			if _, err := s.Send(context.Background(), message("dead-token-0000", notification.High)); !push.IsUnregistered(err) {
				t.Errorf("dead token: %v", err)
			}
		})
	}
	wg.Wait()
	if len(names) != workers*each || e.outbox.Len() != workers*each {
		t.Errorf("%d names, %d deliveries; want %d", len(names), e.outbox.Len(), workers*each)
	}
	if n := e.fake.TokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

// TestConnectionsReused: sends share pooled keep-alive connections, with the
// token endpoint on the same server.
func TestConnectionsReused(t *testing.T) {
	outbox := sinks.NewOutbox(0)
	fake := fcmfake.New(outbox, fcmfake.Options{})
	fake.Unregister("gone-token-1")
	srv := httptest.NewUnstartedServer(fake)
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	sa, _ := serviceAccount()
	creds, _ := sa.JSON(srv.URL + fcmfake.TokenPath)
	if err := fake.TrustServiceAccount(creds); err != nil {
		t.Fatal(err)
	}
	s := newSender(t, push.Config{ProjectID: projectID, CredentialsJSON: creds, Endpoint: srv.URL})
	for i := range 20 {
		to := device
		if i%2 == 1 {
			to = "gone-token-1"
		}
		_, _ = s.Send(context.Background(), message(to, notification.High))
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 20 sequential sends, want 1", n)
	}
}

func TestIsUnregisteredOtherErrors(t *testing.T) {
	for _, err := range []error{nil, fmt.Errorf("x"), failure.Perm(failure.ReasonTokenUnregistered, nil), &push.Error{ErrorCode: "INTERNAL"}} {
		if push.IsUnregistered(err) {
			t.Errorf("IsUnregistered(%v)", err)
		}
	}
	if !push.IsUnregistered(fmt.Errorf("wrapped: %w", &push.Error{ErrorCode: push.CodeUnregistered})) {
		t.Error("wrapped UNREGISTERED not recognised")
	}
}

func BenchmarkSend(b *testing.B) {
	e := newEnv(b, fcmfake.Options{})
	// baseline: the same request with plain net/http and a token fetched
	// once, to read the sender's cost as a ratio.
	b.Run("baseline-net-http", func(b *testing.B) {
		sa, _ := serviceAccount()
		der := e.creds
		var f struct {
			PrivateKey string `json:"private_key"`
		}
		_ = json.Unmarshal(der, &f)
		jc := &jwt.Config{Email: sa.ClientEmail, PrivateKey: []byte(f.PrivateKey), Scopes: []string{push.Scope}, TokenURL: e.srv.URL + fcmfake.TokenPath}
		tok, err := jc.TokenSource(context.Background()).Token()
		if err != nil {
			b.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		url := e.srv.URL + "/v1/projects/" + projectID + "/messages:send"
		body, _ := json.Marshal(map[string]any{"message": map[string]any{
			"token": device, "notification": map[string]string{"title": "t", "body": "b"},
			"android": map[string]string{"priority": "HIGH"},
		}})
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatal(resp.Status)
			}
		}
	})
	s := newSender(b, e.config())
	m := message(device, notification.High)
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
