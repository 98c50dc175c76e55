package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/gymhq/herald/channels"
	_ "github.com/gymhq/herald/channels/all"
	"github.com/gymhq/herald/channels/httperr"
	"github.com/gymhq/herald/channels/webhook"
	"github.com/gymhq/herald/failure"
)

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

// The specification's own example.
func TestSignSpecVector(t *testing.T) {
	key, err := webhook.ParseSecret(secretA)
	if err != nil {
		t.Fatal(err)
	}
	got := webhook.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`), [][]byte{key})
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	for _, s := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_YWJj"} {
		if _, err := webhook.ParseSecret(s); err == nil {
			t.Errorf("ParseSecret(%q) accepted", s)
		}
	}
}

// receiver is an endpoint that checks every delivery with the Standard
// Webhooks reference library, for each secret it knows, and answers as
// scripted.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []delivery
	status   atomic.Int32
	verifier []*standardwebhooks.Webhook
}

type delivery struct {
	id   string
	body map[string]any
	ok   []bool // verified with each secret
}

func newReceiver(t *testing.T, secrets ...string) *receiver {
	r := &receiver{}
	r.status.Store(http.StatusNoContent)
	for _, s := range secrets {
		v, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		r.verifier = append(r.verifier, v)
	}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		d := delivery{id: req.Header.Get("webhook-id")}
		for _, v := range r.verifier {
			d.ok = append(d.ok, v.Verify(b, req.Header) == nil)
		}
		_ = json.Unmarshal(b, &d.body)
		r.mu.Lock()
		r.got = append(r.got, d)
		r.mu.Unlock()
		switch st := int(r.status.Load()); st {
		case http.StatusFound:
			http.Redirect(w, req, "http://169.254.169.254/latest/meta-data/", st)
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(st)
		default:
			w.WriteHeader(st)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// subscriptions builds a webhooks.yaml tree with secret files.
func subscriptions(t *testing.T, yaml string, secrets map[string]string) *webhook.Subscriptions {
	t.Helper()
	fsys := fstest.MapFS{webhook.FileName: {Data: []byte(yaml)}}
	for name, s := range secrets {
		fsys[name] = &fstest.MapFile{Data: []byte(s)}
	}
	s, err := webhook.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newSender(t *testing.T, subs *atomic.Pointer[webhook.Subscriptions], private bool, timeout time.Duration) *webhook.Sender {
	t.Helper()
	s, err := webhook.New(webhook.Options{Subscriptions: subs.Load, AllowPrivateNetworks: private, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func message(to string) *channels.Message {
	return &channels.Message{NotificationID: "ntf_123", Channel: webhook.Name, To: to, EventType: "gym.booking.confirmed",
		EventTime: "2026-11-20T18:04:00Z", Text: `{"booking_id":"bkg_1","class":"Spin 45"}`}
}

// A delivery is verified by the reference library with the old and the
// new secret during a rotation, carries the notification id, and has the
// envelope the docs promise.
func TestDeliverySignedAndShaped(t *testing.T) {
	r := newReceiver(t, secretA, secretB)
	var subs atomic.Pointer[webhook.Subscriptions]
	subs.Store(subscriptions(t, fmt.Sprintf("subscriptions:\n  - id: crm\n    url: %s/hook\n    secret_file: crm.secret\n    event_types: [gym.booking.confirmed]\n", r.URL),
		map[string]string{"crm.secret": "# rotating\n" + secretA + "\n" + secretB + "\n"}))
	s := newSender(t, &subs, true, 0)
	rc, err := s.Send(context.Background(), message("crm"))
	if err != nil {
		t.Fatal(err)
	}
	ds := r.deliveries()
	if len(ds) != 1 || rc.ProviderMessageID != "ntf_123" {
		t.Fatalf("deliveries %v, receipt %+v", ds, rc)
	}
	d := ds[0]
	if d.id != "ntf_123" || len(d.ok) != 2 || !d.ok[0] || !d.ok[1] {
		t.Errorf("webhook-id %q, verified with each secret: %v", d.id, d.ok)
	}
	data, _ := d.body["data"].(map[string]any)
	if d.body["type"] != "gym.booking.confirmed" || d.body["timestamp"] != "2026-11-20T18:04:00Z" || data["booking_id"] != "bkg_1" {
		t.Errorf("body %v", d.body)
	}
	// One secret only: the other's verifier refuses it.
	subs.Store(subscriptions(t, fmt.Sprintf("subscriptions:\n  - id: crm\n    url: %s/hook\n    secret_file: crm.secret\n    event_types: [gym.booking.confirmed]\n", r.URL),
		map[string]string{"crm.secret": secretB}))
	if _, err := s.Send(context.Background(), message("crm")); err != nil {
		t.Fatal(err)
	}
	if d := r.deliveries()[1]; d.ok[0] || !d.ok[1] {
		t.Errorf("after the rotation: verified %v, want only the new secret", d.ok)
	}
}

// Answers are classified as the package documents.
func TestAnswers(t *testing.T) {
	r := newReceiver(t, secretA)
	var subs atomic.Pointer[webhook.Subscriptions]
	subs.Store(subscriptions(t, fmt.Sprintf("subscriptions:\n  - {id: crm, url: %q, secret_file: s, event_types: [x]}\n", r.URL), map[string]string{"s": secretA}))
	s := newSender(t, &subs, true, 0)
	for _, tt := range []struct {
		status int
		class  failure.Class
		reason failure.Reason
	}{
		{http.StatusGone, failure.Permanent, webhook.ReasonEndpointGone},
		{http.StatusTooManyRequests, failure.Retryable, failure.ReasonRateLimited},
		{http.StatusInternalServerError, failure.Retryable, failure.ReasonUnavailable},
		{http.StatusUnauthorized, failure.Retryable, failure.ReasonAuth},
		{http.StatusBadRequest, failure.Permanent, failure.ReasonRejected},
		{http.StatusFound, failure.Permanent, failure.ReasonRejected},
	} {
		r.status.Store(int32(tt.status))
		_, err := s.Send(context.Background(), message("crm"))
		if err == nil || failure.ClassOf(err) != tt.class || failure.ReasonOf(err) != tt.reason {
			t.Errorf("HTTP %d: %v, want %s %s", tt.status, err, tt.class, tt.reason)
		}
		if tt.status == http.StatusTooManyRequests {
			if ra, ok := httperr.RetryAfter(err); !ok || ra != 7*time.Second {
				t.Errorf("429 Retry-After: %v %v", ra, ok)
			}
		}
	}
	n := len(r.deliveries())
	if n != 6 {
		t.Errorf("%d requests, want 6: a redirect must not be followed", n)
	}
	// No subscription by that id (removed by a reload).
	if _, err := s.Send(context.Background(), message("gone")); failure.ClassOf(err) != failure.Permanent {
		t.Errorf("unknown subscription: %v", err)
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) }))
	defer slow.Close()
	var subs atomic.Pointer[webhook.Subscriptions]
	subs.Store(subscriptions(t, fmt.Sprintf("subscriptions:\n  - {id: slow, url: %q, secret_file: s, event_types: [x]}\n", slow.URL), map[string]string{"s": secretA}))
	s := newSender(t, &subs, true, 200*time.Millisecond)
	if _, err := s.Send(context.Background(), message("slow")); failure.ClassOf(err) != failure.Retryable || failure.ReasonOf(err) != failure.ReasonTimeout {
		t.Errorf("slow endpoint: %v, want retryable timeout", err)
	}
}

// Without AllowPrivateNetworks, internal destinations are refused before
// any byte is sent, whatever the name resolves to.
func TestInternalDestinationsRefused(t *testing.T) {
	r := newReceiver(t, secretA)
	port := r.URL[strings.LastIndex(r.URL, ":")+1:]
	for _, u := range []string{
		r.URL, "http://localhost:" + port, "http://[::1]:" + port, "http://169.254.169.254/latest/meta-data/",
		"http://10.1.2.3/", "http://192.168.0.10/", "http://100.64.0.1/", "http://0.0.0.0:" + port,
	} {
		var subs atomic.Pointer[webhook.Subscriptions]
		subs.Store(subscriptions(t, fmt.Sprintf("subscriptions:\n  - {id: in, url: %q, secret_file: s, event_types: [x]}\n", u), map[string]string{"s": secretA}))
		s := newSender(t, &subs, false, time.Second)
		_, err := s.Send(context.Background(), message("in"))
		if failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != failure.ReasonDestinationDenied {
			t.Errorf("%s: %v, want permanent destination_denied", u, err)
		}
	}
	if n := len(r.deliveries()); n != 0 {
		t.Errorf("%d requests reached the loopback receiver", n)
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "abs.secret")
	if err := os.WriteFile(abs, []byte(secretA), 0o600); err != nil {
		t.Fatal(err)
	}
	good := "  - {id: a, url: 'https://x.example/h', secret_file: s, event_types: [t]}\n"
	for _, tt := range []struct{ yaml, want string }{
		{"subscriptions:\n  - {id: A, url: 'https://x.example', secret_file: s, event_types: [t]}\n", "id must be"},
		{"subscriptions:\n" + good + good, "used twice"},
		{"subscriptions:\n  - {id: a, url: 'ftp://x', secret_file: s, event_types: [t]}\n", "not an absolute http(s) URL"},
		{"subscriptions:\n  - {id: a, url: 'https://u:p@x.example', secret_file: s, event_types: [t]}\n", "credentials"},
		{"subscriptions:\n  - {id: a, url: 'https://x.example:99999/h', secret_file: s, event_types: [t]}\n", "port 99999 is not 1-65535"},
		{"subscriptions:\n  - {id: a, url: 'https://:443/h', secret_file: s, event_types: [t]}\n", "has no host"},
		{"subscriptions:\n  - {id: a, url: 'https://x.example', secret_file: s, event_types: []}\n", "event_types is empty"},
		{"subscriptions:\n  - {id: a, url: 'https://x.example', event_types: [t]}\n", "secret_file is required"},
		{"subscriptions:\n  - {id: a, url: 'https://x.example', secret_file: missing, event_types: [t]}\n", "secret_file missing"},
		{"subscriptions:\n  - {id: a, url: 'https://x.example', secret_file: bad, event_types: [t]}\n", "line 1"},
		{"subscriptions:\n  - {id: a, url: 'https://x.example', secret_file: s, event_types: [t], retries: 3}\n", "line 2: unknown key retries (a subscription has id, url, secret_file, event_types)"},
		{"subscriptions: {id: a}\n", "line 1: cannot unmarshal !!map"},
		{"subscriptions: [", "webhooks.yaml"},
	} {
		_, err := webhook.Load(fstest.MapFS{webhook.FileName: {Data: []byte(tt.yaml)}, "s": {Data: []byte(secretA)}, "bad": {Data: []byte("hunter2")}})
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), webhook.FileName) {
			t.Errorf("%q: %v, want an error naming the file and %q", tt.yaml, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "struct")) {
			t.Errorf("error quotes a secret: %v", err)
		}
	}
	s, err := webhook.Load(fstest.MapFS{webhook.FileName: {Data: []byte("subscriptions:\n" + good +
		"  - {id: b, url: 'https://y.example/h', secret_file: '" + abs + "', event_types: [t, u]}\n")}, "s": {Data: []byte(secretA)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.For("t"), ","); got != "a,b" || s.Lookup("b").URL != "https://y.example/h" || len(s.For("v")) != 0 {
		t.Errorf("For(t) = %s", got)
	}
	if s, err := webhook.Load(fstest.MapFS{}); err != nil || s.Len() != 0 {
		t.Errorf("no webhooks.yaml: %v, %d", err, s.Len())
	}
}

// Reloads swap subscriptions while sends run (go test -race).
func TestReloadWhileSending(t *testing.T) {
	r := newReceiver(t, secretA)
	var subs atomic.Pointer[webhook.Subscriptions]
	yaml := fmt.Sprintf("subscriptions:\n  - {id: crm, url: %q, secret_file: s, event_types: [x]}\n", r.URL)
	subs.Store(subscriptions(t, yaml, map[string]string{"s": secretA}))
	s := newSender(t, &subs, true, 0)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := s.Send(context.Background(), message("crm")); err != nil {
					t.Errorf("sender %d: %v", i, err)
					return
				}
			}
		}()
	}
	for range 50 {
		subs.Store(subscriptions(t, yaml, map[string]string{"s": secretA}))
	}
	wg.Wait()
	for _, d := range r.deliveries() {
		if !d.ok[0] {
			t.Fatal("a delivery failed verification")
		}
	}
}

var errAny = errors.New("any")

func FuzzParse(f *testing.F) {
	f.Add([]byte("subscriptions:\n  - {id: a, url: 'https://x.example/h', secret_file: s, event_types: [t]}\n"))
	f.Add([]byte("subscriptions: [{id: a}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := webhook.Parse(b, func(p string) ([]byte, error) {
			if p == "s" {
				return []byte(secretA), nil
			}
			return nil, errAny
		})
		if err == nil {
			for _, id := range []string{"a", "b"} {
				if sub := s.Lookup(id); sub != nil && len(sub.Keys) == 0 {
					t.Fatal("a subscription without keys")
				}
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	key, _ := webhook.ParseSecret(secretA)
	now := time.Unix(1614265330, 0)
	f.Add("msg_1", "1614265330", webhook.Sign("msg_1", now, []byte("{}"), [][]byte{key}), []byte("{}"))
	f.Add("", "x", "v1,", []byte(nil))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
		if webhook.Verify(h, body, [][]byte{key}, 5*time.Minute, now) == nil {
			// Accepted: it must be what Sign makes.
			if !strings.Contains(sig, webhook.Sign(id, now, body, [][]byte{key})[3:]) && ts == "1614265330" {
				t.Fatalf("accepted a signature Sign does not make: %q", sig)
			}
		}
	})
}
