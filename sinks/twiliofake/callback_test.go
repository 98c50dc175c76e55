package twiliofake_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/twilio/twilio-go/client"

	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/twiliofake"
)

// receiver records the status callbacks it is posted.
type receiver struct {
	mu    sync.Mutex
	forms []url.Values
	sigs  []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	rc.mu.Lock()
	rc.forms = append(rc.forms, form)
	rc.sigs = append(rc.sigs, r.Header.Get("X-Twilio-Signature"))
	rc.mu.Unlock()
}

func newCallbackFake(t *testing.T, on bool) (*twiliofake.Fake, *httptest.Server, *receiver, *httptest.Server) {
	t.Helper()
	f := twiliofake.New(sinks.NewOutbox(0), twiliofake.Options{AccountSID: account, AuthToken: token, StatusCallbacks: on})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	rc := &receiver{}
	cb := httptest.NewServer(rc)
	t.Cleanup(cb.Close)
	return f, srv, rc, cb
}

// TestStatusCallbacksOffByDefault: a StatusCallback is recorded but nothing
// is posted unless asked for.
func TestStatusCallbacksOffByDefault(t *testing.T) {
	f, srv, rc, cb := newCallbackFake(t, false)
	if status, body := post(t, srv, account, token, url.Values{"To": {"+447700900123"}, "From": {"+441234567890"}, "Body": {"hi"}, "StatusCallback": {cb.URL + "/cb"}}); status != http.StatusCreated {
		t.Fatalf("status %d: %v", status, body)
	}
	f.WaitCallbacks()
	if len(rc.forms) != 0 || len(f.Callbacks()) != 0 {
		t.Fatalf("callbacks posted with StatusCallbacks off: %v", rc.forms)
	}
}

// TestStatusCallbacks: "sent" then the final status, scripted per number,
// each signed so that twilio-go's own validator accepts it.
func TestStatusCallbacks(t *testing.T) {
	f, srv, rc, cb := newCallbackFake(t, true)
	f.DeliveryOutcome("+447700900999", "undelivered", 30005)
	for _, to := range []string{"+447700900123", "+447700900999"} {
		if status, body := post(t, srv, account, token, url.Values{"To": {to}, "From": {"+441234567890"}, "Body": {"hi"}, "StatusCallback": {cb.URL + "/cb?x=1"}}); status != http.StatusCreated {
			t.Fatalf("status %d: %v", status, body)
		}
	}
	f.WaitCallbacks()
	rv := client.NewRequestValidator(token)
	got := map[string][]string{}
	for i, form := range rc.forms {
		params := map[string]string{}
		for k, v := range form {
			params[k] = v[0]
		}
		if !rv.Validate(cb.URL+"/cb?x=1", params, rc.sigs[i]) {
			t.Errorf("callback %v: signature %q not accepted by twilio-go", form, rc.sigs[i])
		}
		if form.Get("MessageSid") == "" || form.Get("AccountSid") != account || form.Get("SmsStatus") != form.Get("MessageStatus") {
			t.Errorf("callback %v lacks Twilio's parameters", form)
		}
		got[form.Get("To")] = append(got[form.Get("To")], form.Get("MessageStatus")+"/"+form.Get("ErrorCode"))
	}
	want := map[string][]string{"+447700900123": {"sent/", "delivered/"}, "+447700900999": {"sent/", "undelivered/30005"}}
	for to, w := range want {
		if len(got[to]) != 2 || got[to][0] != w[0] || got[to][1] != w[1] {
			t.Errorf("%s: callbacks %v, want %v", to, got[to], w)
		}
	}
	for _, c := range f.Callbacks() {
		if c.HTTPStatus != http.StatusOK || c.Err != nil {
			t.Errorf("callback %+v not answered 200", c)
		}
	}
	if rv := client.NewRequestValidator("other"); rv.Validate(cb.URL+"/cb?x=1", map[string]string{"To": "+447700900123"}, rc.sigs[0]) {
		t.Error("a signature made with the token validates with another")
	}
}
