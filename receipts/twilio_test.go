package receipts_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/receipts"
	"github.com/gymhq/herald/sinks/twiliofake"
	"github.com/gymhq/herald/suppress"
)

const (
	publicURL = "https://herald.example.com/v1/receipts/twilio"
	oldToken  = "oldtoken0123"
	newToken  = "newtoken4567"
	phone     = "+447700900123"
)

type handlerEnv struct {
	h        *receipts.Twilio
	store    *receipts.Memory
	supp     *suppress.Memory
	metrics  *receipts.Metrics
	logs     *observer.ObservedLogs
	mu       sync.Mutex
	outcomes []receipts.Receipt
}

func newHandlerEnv(t *testing.T, edit func(*receipts.TwilioOptions)) *handlerEnv {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	e := &handlerEnv{store: receipts.NewMemory(), supp: suppress.NewMemory(nil), metrics: receipts.NewMetrics(prometheus.NewRegistry()), logs: logs}
	opts := receipts.TwilioOptions{
		PublicURL:  publicURL,
		AuthTokens: []string{newToken, oldToken},
		Store:      e.store,
		Suppressor: e.supp,
		Metrics:    e.metrics,
		Logger:     zap.New(core),
		OnOutcome: func(r receipts.Receipt) {
			e.mu.Lock()
			e.outcomes = append(e.outcomes, r)
			e.mu.Unlock()
		},
		Clock: func() time.Time { return t0 },
	}
	if edit != nil {
		edit(&opts)
	}
	h, err := receipts.TwilioHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

func callback(sid, status, code string) url.Values {
	v := url.Values{
		"AccountSid": {"AC0123456789abcdef0123456789abcdef"}, "ApiVersion": {"2010-04-01"},
		"MessageSid": {sid}, "SmsSid": {sid}, "MessageStatus": {status}, "SmsStatus": {status},
		"To": {phone}, "From": {"+441234567890"},
	}
	if code != "" {
		v.Set("ErrorCode", code)
	}
	return v
}

// do posts form to the handler, signed with token for signedURL ("" for
// publicURL); a token of "" sends no signature.
func (e *handlerEnv) do(form url.Values, token, signedURL string) int {
	if signedURL == "" {
		signedURL = publicURL
	}
	target := "/v1/receipts/twilio"
	if u, _ := url.Parse(signedURL); u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("X-Twilio-Signature", twiliofake.Signature(token, signedURL, form))
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec.Code
}

func (e *handlerEnv) callbacks(result string) float64 {
	return testutil.ToFloat64(e.metrics.Callbacks.WithLabelValues(receipts.ProviderTwilio, result))
}

func TestTwilioHandlerSignature(t *testing.T) {
	tests := []struct {
		name      string
		token     string
		signedURL string
		tamper    func(url.Values)
		want      int
	}{
		{"new token", newToken, "", nil, http.StatusOK},
		{"old token during rotation", oldToken, "", nil, http.StatusOK},
		{"with the default port", newToken, "https://herald.example.com:443/v1/receipts/twilio", nil, http.StatusOK},
		{"missing", "", "", nil, http.StatusForbidden},
		{"unknown token", "forgedtoken1", "", nil, http.StatusForbidden},
		{"another URL", newToken, "https://evil.example.com/v1/receipts/twilio", nil, http.StatusForbidden},
		{"a parameter changed after signing", newToken, "", func(v url.Values) { v.Set("MessageStatus", "delivered") }, http.StatusForbidden},
		{"a parameter added after signing", newToken, "", func(v url.Values) { v.Set("ErrorCode", "21610") }, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newHandlerEnv(t, nil)
			form := callback("SM1", "undelivered", "30003")
			signedURL := tt.signedURL
			if signedURL == "" {
				signedURL = publicURL
			}
			if tt.tamper != nil {
				tt.tamper(form)
			}
			req := httptest.NewRequest(http.MethodPost, "/v1/receipts/twilio", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.token != "" {
				// The signature of the form before tampering.
				orig := callback("SM1", "undelivered", "30003")
				req.Header.Set("X-Twilio-Signature", twiliofake.Signature(tt.token, signedURL, orig))
			}
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d", rec.Code, tt.want)
			}
			_, stored, _ := e.store.Lookup(context.Background(), "SM1")
			_, suppressed, _ := e.supp.Lookup(context.Background(), "sms", phone)
			if forged := tt.want == http.StatusForbidden; forged == stored || suppressed {
				t.Errorf("stored %v, suppressed %v after a %d", stored, suppressed, rec.Code)
			}
			if tt.want == http.StatusForbidden && e.callbacks(receipts.ResultForged) != 1 {
				t.Errorf("forged callbacks counted %v", e.callbacks(receipts.ResultForged))
			}
		})
	}
}

// TestTwilioHandlerQuery: Twilio signs the URL it posted to, query included.
func TestTwilioHandlerQuery(t *testing.T) {
	e := newHandlerEnv(t, nil)
	if got := e.do(callback("SM1", "sent", ""), newToken, publicURL+"?region=eu"); got != http.StatusOK {
		t.Fatalf("signed with the query: %d", got)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/receipts/twilio?region=us", strings.NewReader(callback("SM1", "sent", "").Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliofake.Signature(newToken, publicURL+"?region=eu", callback("SM1", "sent", "")))
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("signature for another query: %d", rec.Code)
	}
}

func TestTwilioHandlerRefusals(t *testing.T) {
	sign := func(body string) string {
		v, _ := url.ParseQuery(body)
		return twiliofake.Signature(newToken, publicURL, v)
	}
	good := callback("SM1", "sent", "").Encode()
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		sig         string
		want        int
		result      string
	}{
		{"over MaxBody", "POST", "application/x-www-form-urlencoded", good + "&Pad=" + strings.Repeat("x", 2000), "x", http.StatusRequestEntityTooLarge, receipts.ResultTooLarge},
		{"not a form", "POST", "application/json", `{"MessageSid":"SM1"}`, "x", http.StatusBadRequest, receipts.ResultMalformed},
		{"no content type", "POST", "", good, sign(good), http.StatusBadRequest, receipts.ResultMalformed},
		{"bad escape", "POST", "application/x-www-form-urlencoded", "MessageSid=%zz", "x", http.StatusBadRequest, receipts.ResultMalformed},
		{"a parameter twice", "POST", "application/x-www-form-urlencoded", good + "&MessageStatus=delivered", sign(good + "&MessageStatus=delivered"), http.StatusBadRequest, receipts.ResultMalformed},
		{"no MessageSid", "POST", "application/x-www-form-urlencoded", "MessageStatus=sent", sign("MessageStatus=sent"), http.StatusBadRequest, receipts.ResultMalformed},
		{"no MessageStatus", "POST", "application/x-www-form-urlencoded", "MessageSid=SM1", sign("MessageSid=SM1"), http.StatusBadRequest, receipts.ResultMalformed},
		{"GET", "GET", "", "", "x", http.StatusMethodNotAllowed, receipts.ResultMalformed},
		{"untracked status", "POST", "application/x-www-form-urlencoded", "MessageSid=SM1&MessageStatus=received", sign("MessageSid=SM1&MessageStatus=received"), http.StatusOK, receipts.ResultIgnored},
		{"charset parameter", "POST", "application/x-www-form-urlencoded; charset=utf-8", good, sign(good), http.StatusOK, receipts.ResultUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newHandlerEnv(t, func(o *receipts.TwilioOptions) { o.MaxBody = 1024 })
			req := httptest.NewRequest(tt.method, "/v1/receipts/twilio", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			req.Header.Set("X-Twilio-Signature", tt.sig)
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			if rec.Code != tt.want || e.callbacks(tt.result) != 1 {
				t.Errorf("status %d (want %d), %s counted %v", rec.Code, tt.want, tt.result, e.callbacks(tt.result))
			}
		})
	}
}

// TestTwilioCodeTable: each code on a final status suppresses the address
// with the reason of the table, or leaves it alone; "sent" never
// suppresses, and a code on "delivered" is not acted on.
func TestTwilioCodeTable(t *testing.T) {
	tests := []struct {
		status, code string
		want         receipts.Status
		suppressAs   failure.Reason
	}{
		{"undelivered", "30005", receipts.StatusUndelivered, failure.ReasonInvalidAddress},
		{"undelivered", "30006", receipts.StatusUndelivered, failure.ReasonInvalidAddress},
		{"failed", "21211", receipts.StatusFailed, failure.ReasonInvalidAddress},
		{"failed", "21614", receipts.StatusFailed, failure.ReasonInvalidAddress},
		{"failed", "21610", receipts.StatusFailed, failure.ReasonUnsubscribed},
		{"undelivered", "21610", receipts.StatusUndelivered, failure.ReasonUnsubscribed},
		{"undelivered", "30003", receipts.StatusUndelivered, ""},
		{"undelivered", "30004", receipts.StatusUndelivered, ""},
		{"undelivered", "30007", receipts.StatusUndelivered, ""},
		{"undelivered", "30008", receipts.StatusUndelivered, ""},
		{"failed", "30001", receipts.StatusFailed, ""},
		{"undelivered", "12345", receipts.StatusUndelivered, ""},
		{"undelivered", "", receipts.StatusUndelivered, ""},
		{"undelivered", "not-a-number", receipts.StatusUndelivered, ""},
		{"delivered", "30005", receipts.StatusDelivered, ""},
		{"sent", "21610", receipts.StatusSent, ""},
		{"queued", "", receipts.StatusAccepted, ""},
		{"canceled", "", receipts.StatusFailed, ""},
		{"read", "", receipts.StatusDelivered, ""},
	}
	for _, tt := range tests {
		t.Run(tt.status+"/"+tt.code, func(t *testing.T) {
			e := newHandlerEnv(t, nil)
			ctx := context.Background()
			if _, err := e.store.Accepted(ctx, accepted("ntf1", "SM1")); err != nil {
				t.Fatal(err)
			}
			if got := e.do(callback("SM1", tt.status, tt.code), newToken, ""); got != http.StatusOK {
				t.Fatalf("status %d", got)
			}
			r, _, _ := e.store.Get(ctx, "ntf1")
			if r.Status != tt.want {
				t.Errorf("receipt %s, want %s", r.Status, tt.want)
			}
			entry, ok, _ := e.supp.Lookup(ctx, "sms", phone)
			if ok != (tt.suppressAs != "") || entry.Reason != string(tt.suppressAs) {
				t.Errorf("suppressed %v as %q, want %q", ok, entry.Reason, tt.suppressAs)
			}
			wantOutcomes := 0
			if tt.want.Final() {
				wantOutcomes = 1
			}
			if len(e.outcomes) != wantOutcomes || wantOutcomes == 1 && (e.outcomes[0].NotificationID != "ntf1" || e.outcomes[0].Status != tt.want || e.outcomes[0].Code != tt.code) {
				t.Errorf("OnOutcome got %+v", e.outcomes)
			}
			if tt.want != receipts.StatusAccepted {
				if n := testutil.ToFloat64(e.metrics.Receipts.WithLabelValues("sms", "twilio", string(tt.want))); n != 1 {
					t.Errorf("herald_delivery_receipts_total{status=%q} = %v", tt.want, n)
				}
			}
		})
	}
}

// TestTwilioHandlerUnknownAndRepeated: a callback for a message no worker
// reported is stored, answered 200, counted and logged; a repeated callback
// is answered 200, changes nothing and calls OnOutcome once.
func TestTwilioHandlerUnknownAndRepeated(t *testing.T) {
	e := newHandlerEnv(t, nil)
	if got := e.do(callback("SMunknown", "delivered", ""), newToken, ""); got != http.StatusOK {
		t.Fatalf("unknown: %d", got)
	}
	if e.callbacks(receipts.ResultUnknown) != 1 || e.logs.FilterMessage("twilio receipt for a message no worker has reported (yet)").Len() != 1 {
		t.Errorf("unknown not counted (%v) or logged", e.callbacks(receipts.ResultUnknown))
	}
	if _, err := e.store.Accepted(context.Background(), accepted("ntf1", "SM1")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := e.do(callback("SM1", "delivered", ""), newToken, ""); got != http.StatusOK {
			t.Fatalf("repeated: %d", got)
		}
	}
	if e.callbacks(receipts.ResultRecorded) != 1 || e.callbacks(receipts.ResultUnchanged) != 2 {
		t.Errorf("recorded %v unchanged %v", e.callbacks(receipts.ResultRecorded), e.callbacks(receipts.ResultUnchanged))
	}
	if len(e.outcomes) != 2 { // the unknown one and SM1
		t.Errorf("OnOutcome called %d times", len(e.outcomes))
	}
	for _, entry := range e.logs.All() {
		for _, f := range entry.Context {
			if strings.Contains(f.String, phone) {
				t.Errorf("log %q carries the phone number unmasked", entry.Message)
			}
		}
	}
}

type failingStore struct{ receipts.Store }

func (failingStore) Record(context.Context, string, receipts.Status, string, time.Time) (receipts.Receipt, bool, error) {
	return receipts.Receipt{}, false, failure.Retry(failure.ReasonUnavailable, errors.New("down"))
}

type failingSuppressor struct{}

func (failingSuppressor) Add(context.Context, string, string, string) error {
	return errors.New("down")
}

// TestTwilioHandlerFailures: a store or suppression list that fails answers
// 500, and a retry after the list came back suppresses even though the
// receipt no longer changes.
func TestTwilioHandlerFailures(t *testing.T) {
	e := newHandlerEnv(t, func(o *receipts.TwilioOptions) { o.Store = failingStore{} })
	if got := e.do(callback("SM1", "sent", ""), newToken, ""); got != http.StatusInternalServerError {
		t.Errorf("store down: %d", got)
	}
	store, supp := receipts.NewMemory(), suppress.NewMemory(nil)
	var down receipts.Suppressor = failingSuppressor{}
	for i, s := range []receipts.Suppressor{down, supp} {
		e := newHandlerEnv(t, func(o *receipts.TwilioOptions) { o.Store, o.Suppressor = store, s })
		want := []int{http.StatusInternalServerError, http.StatusOK}[i]
		if got := e.do(callback("SM1", "failed", "21610"), newToken, ""); got != want {
			t.Errorf("attempt %d: %d, want %d", i, got, want)
		}
	}
	if entry, ok, _ := supp.Lookup(context.Background(), "sms", phone); !ok || entry.Reason != "unsubscribed" {
		t.Errorf("retried callback did not suppress: %+v %v", entry, ok)
	}
}

func TestTwilioHandlerOptions(t *testing.T) {
	for name, o := range map[string]receipts.TwilioOptions{
		"no URL":   {AuthTokens: []string{"x"}, Store: receipts.NewMemory()},
		"relative": {PublicURL: "/v1/receipts/twilio", AuthTokens: []string{"x"}, Store: receipts.NewMemory()},
		"no token": {PublicURL: publicURL, AuthTokens: []string{""}, Store: receipts.NewMemory()},
		"no store": {PublicURL: publicURL, AuthTokens: []string{"x"}},
		"ftp":      {PublicURL: "ftp://x/y", AuthTokens: []string{"x"}, Store: receipts.NewMemory()},
	} {
		if _, err := receipts.TwilioHandler(o); !errors.Is(err, receipts.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
