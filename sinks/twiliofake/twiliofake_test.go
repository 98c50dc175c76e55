package twiliofake_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/twiliofake"
)

const (
	account = "AC0123456789abcdef0123456789abcdef"
	token   = "secret0123"
	service = "MG0123456789abcdef0123456789abcdef"
)

func post(t *testing.T, srv *httptest.Server, user, pass string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/2010-04-01/Accounts/"+account+"/Messages.json", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, body
}

func newServer(t *testing.T) (*twiliofake.Fake, *sinks.Outbox, *httptest.Server) {
	outbox := sinks.NewOutbox(0)
	now := func() time.Time { return time.Date(2026, 11, 23, 7, 15, 0, 0, time.UTC) }
	f := twiliofake.New(outbox, twiliofake.Options{AccountSID: account, AuthToken: token, Now: now})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, outbox, srv
}

func TestCreateMessageResource(t *testing.T) {
	_, outbox, srv := newServer(t)
	status, body := post(t, srv, account, token, url.Values{"To": {"+447700900123"}, "From": {"+441234567890"}, "Body": {"hi"}, "ValidityPeriod": {"600"}})
	if status != http.StatusCreated {
		t.Fatalf("status %d: %v", status, body)
	}
	sid, _ := body["sid"].(string)
	if !regexp.MustCompile(`^SM[0-9a-f]{32}$`).MatchString(sid) {
		t.Errorf("sid %q", sid)
	}
	want := map[string]any{
		"account_sid": account, "api_version": "2010-04-01", "body": "hi", "direction": "outbound-api",
		"from": "+441234567890", "to": "+447700900123", "status": "queued", "num_segments": "1", "num_media": "0",
		"date_created": "Mon, 23 Nov 2026 07:15:00 +0000", "price": nil, "error_code": nil,
		"messaging_service_sid": nil,
		"uri":                   "/2010-04-01/Accounts/" + account + "/Messages/" + sid + ".json",
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %#v, want %#v", k, body[k], v)
		}
	}
	d := outbox.All()[0]
	if d.ProviderID != sid || d.Meta["ValidityPeriod"] != "600" {
		t.Errorf("delivery %+v", d)
	}

	status, body = post(t, srv, account, token, url.Values{"To": {"+447700900123"}, "MessagingServiceSid": {service}, "Body": {"hi"}})
	if status != http.StatusCreated || body["status"] != "accepted" || body["from"] != nil || body["messaging_service_sid"] != service {
		t.Errorf("messaging service answer %d %v", status, body)
	}
}

func TestErrors(t *testing.T) {
	f, outbox, srv := newServer(t)
	f.FailNumber("+447700900666", 400, 21610, "")
	ok := url.Values{"To": {"+447700900123"}, "From": {"+441234567890"}, "Body": {"hi"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vals := range ok {
			f[key] = vals
		}
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	tests := []struct {
		name       string
		user, pass string
		form       url.Values
		status     int
		code       float64
	}{
		{"no auth", "", "", ok, 401, 20003},
		{"wrong token", account, "nope", ok, 401, 20003},
		{"no To", account, token, with("To", ""), 400, 21604},
		{"bad To", account, token, with("To", "+1555"), 400, 21211},
		{"no sender", account, token, with("From", ""), 400, 21603},
		{"no body", account, token, with("Body", ""), 400, 21602},
		{"long body", account, token, with("Body", strings.Repeat("x", 1601)), 400, 21617},
		{"validity too long", account, token, with("ValidityPeriod", "36001"), 400, 21624},
		{"unsubscribed", account, token, with("To", "+447700900666"), 400, 21610},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, srv, tt.user, tt.pass, tt.form)
			if status != tt.status || body["code"] != tt.code || body["status"] != float64(tt.status) {
				t.Errorf("got %d %v", status, body)
			}
			if body["more_info"] != fmt.Sprintf("https://www.twilio.com/docs/errors/%d", int(tt.code)) {
				t.Errorf("more_info %v", body["more_info"])
			}
			if msg, _ := body["message"].(string); msg == "" {
				t.Error("no message")
			}
		})
	}
	f.FailNext(2, 429, 20429)
	for range 2 {
		if status, body := post(t, srv, account, token, ok); status != 429 || body["code"] != float64(20429) {
			t.Errorf("FailNext: %d %v", status, body)
		}
	}
	if status, _ := post(t, srv, account, token, ok); status != 201 {
		t.Errorf("after FailNext: %d", status)
	}
	if outbox.Len() != 1 || f.Accepted() != 1 || f.Requests() != len(tests)+3 {
		t.Errorf("outbox %d accepted %d requests %d", outbox.Len(), f.Accepted(), f.Requests())
	}
	f.FailNumber("+447700900666", 0, 0, "")
	if status, _ := post(t, srv, account, token, with("To", "+447700900666")); status != 201 {
		t.Errorf("cleared number: %d", status)
	}
}

func TestSegments(t *testing.T) {
	tests := []struct {
		body string
		want int
	}{
		{"", 1},
		{strings.Repeat("a", 160), 1},
		{strings.Repeat("a", 161), 2},
		{strings.Repeat("a", 306), 2},
		{strings.Repeat("a", 307), 3},
		{strings.Repeat("€", 80), 1},  // extension characters cost two septets
		{strings.Repeat("€", 81), 2},  // 162 septets
		{strings.Repeat("é", 160), 1}, // in the basic set
		{strings.Repeat("ś", 70), 1},  // not GSM-7: UCS-2
		{strings.Repeat("ś", 71), 2},
		{strings.Repeat("🎉", 35), 1}, // two UTF-16 units each
		{strings.Repeat("🎉", 36), 2},
	}
	for _, tt := range tests {
		if got := twiliofake.Segments(tt.body); got != tt.want {
			t.Errorf("Segments(%d × %q) = %d, want %d", len([]rune(tt.body)), []rune(tt.body + " ")[0], got, tt.want)
		}
	}
}
