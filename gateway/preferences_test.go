package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	_ "github.com/gymhq/herald/channels/all"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/gateway"
	"github.com/gymhq/herald/gateway/jwtauth"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/prefs/unsubscribe"
	"github.com/gymhq/herald/templates"
)

var (
	jwtSecret   = []byte("a-gateway-jwt-secret-of-32-bytes!!")
	unsubSecret = []byte("an-unsubscribe-secret-of-32-bytes!")
)

// prefsGateway is a gateway with preferences on store, checking real HS256
// tokens as cmd/herald's does; now is its clock.
type prefsGateway struct {
	url    string
	store  prefs.Store
	signer *unsubscribe.Signer
	now    time.Time
}

func startPrefsGateway(t *testing.T, store prefs.Store, now time.Time) *prefsGateway {
	t.Helper()
	v, err := jwtauth.NewHS256(jwtSecret)
	if err != nil {
		t.Fatal(err)
	}
	set, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := unsubscribe.NewSigner(unsubSecret, 0)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Options{
		Feed: feed.NewMemory(feed.Limits{}),
		Authenticate: func(r *http.Request) (string, time.Time, error) {
			tok, ok := jwtauth.FromRequest(r)
			if !ok {
				return "", time.Time{}, errors.New("no bearer token")
			}
			c, err := v.Verify(tok, time.Now())
			return c.Subject, c.Expires, err
		},
		AllowedOrigins: []string{"https://app.example.com"},
		Preferences:    store, Templates: func() *templates.Set { return set }, Unsubscribe: signer,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return &prefsGateway{url: srv.URL, store: store, signer: signer, now: now}
}

func token(t *testing.T, person string) string {
	t.Helper()
	tok, err := jwtauth.MintHS256(jwtSecret, person, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call makes one request; it returns the status and body.
func call(t *testing.T, method, u, bearer, contentType, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b, res.Header
}

func view(t *testing.T, b []byte) prefs.View {
	t.Helper()
	var v prefs.View
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

// TestPreferencesOverHTTP: a person reads the defaults, changes them in
// steps that merge, cannot send what is malformed or switch transactional
// off entirely, and never reaches anybody else's.
func TestPreferencesOverHTTP(t *testing.T) {
	srv := redistest.Start(t)
	store := prefs.NewRedis(srv.Client(), "")
	t.Cleanup(func() { _ = store.Close() })
	gw := startPrefsGateway(t, store, time.Now())
	u := gw.url + "/v1/preferences"
	ana, bo := token(t, "mem_ana"), token(t, "mem_bo")
	const jsonType = "application/json"

	if code, _, h := call(t, "GET", u, "", "", ""); code != 401 || h.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d", code)
	}
	if code, _, _ := call(t, "PUT", u, "not-a-jwt", jsonType, `{}`); code != 401 {
		t.Fatalf("bad token: %d", code)
	}

	code, b, h := call(t, "GET", u, ana, "", "")
	if code != 200 || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET: %d %s", code, b)
	}
	v := view(t, b)
	if !v.Channels["sms"] || v.Categories["marketing"]["sms"] || !v.Categories["marketing"]["email"] ||
		len(v.Required) != 1 || v.Required[0] != "transactional" || v.QuietHours != nil || v.TimeZone != "" {
		t.Fatalf("defaults: %s", b)
	}
	if len(v.Categories) != 5 || len(v.Categories["updates"]) != 4 {
		t.Fatalf("want every declared category on every channel a person chooses: %s", b)
	}

	steps := []struct {
		body  string
		check func(prefs.View) bool
	}{
		{`{"channels":{"sms":false}}`, func(v prefs.View) bool {
			return !v.Channels["sms"] && !v.Categories["updates"]["sms"] && !v.Categories["transactional"]["sms"]
		}},
		{`{"categories":{"marketing":{"email":false},"reminders":{"sms":true}},"quiet_hours":{"from":"23:00","to":"06:30"},"time_zone":"Europe/London"}`,
			func(v prefs.View) bool {
				return !v.Channels["sms"] && !v.Categories["marketing"]["email"] && v.Categories["reminders"]["sms"] &&
					v.QuietHours != nil && v.QuietHours.From == 23*60 && v.TimeZone == "Europe/London"
			}},
		{`{"channels":{"sms":null},"categories":{"reminders":null},"time_zone":null}`, func(v prefs.View) bool {
			return v.Channels["sms"] && !v.Categories["marketing"]["email"] && v.Categories["reminders"]["sms"] && v.TimeZone == "" && v.QuietHours != nil
		}},
		// Moving transactional between channels is allowed.
		{`{"categories":{"transactional":{"email":false,"sms":false,"push":false}}}`, func(v prefs.View) bool {
			return v.Categories["transactional"]["inapp"] && !v.Categories["transactional"]["email"]
		}},
	}
	for _, s := range steps {
		code, b, _ := call(t, "PUT", u, ana, "application/json; charset=utf-8", s.body)
		if code != 200 || !s.check(view(t, b)) {
			t.Fatalf("PUT %s: %d %s", s.body, code, b)
		}
		if _, again, _ := call(t, "GET", u, ana, "", ""); !bytes.Equal(again, b) {
			t.Fatalf("GET after PUT %s differs:\n%s\n%s", s.body, again, b)
		}
	}

	bad := []struct {
		body, ctype string
		code        int
		field, text string
	}{
		{`{"channels":{"fax":false}}`, jsonType, 400, "channels.fax", "not a channel you can choose"},
		{`{"categories":{"offers":{"email":false}}}`, jsonType, 400, "categories.offers", "not a category"},
		{`{"channels":{"email":"no"}}`, jsonType, 400, "channels.email", "true, false or null"},
		{`{"channels":`, jsonType, 400, "channels", "not valid JSON"},
		{`{"time_zone":"Mars/Olympus"}`, jsonType, 400, "time_zone", "time zone"},
		{`{"categories":{"transactional":{"inapp":false}}}`, jsonType, 422, "categories.transactional",
			"transactional cannot be switched off entirely; keep at least one channel"},
		{`{}`, "text/plain", 415, "", "application/json"},
		{`{}`, "", 415, "", "application/json"},
		{`{"channels":{}}` + strings.Repeat(" ", prefs.MaxBodyBytes), jsonType, 413, "", "over"},
	}
	_, before, _ := call(t, "GET", u, ana, "", "")
	for _, c := range bad {
		code, b, _ := call(t, "PUT", u, ana, c.ctype, c.body)
		var e struct{ Error, Field string }
		_ = json.Unmarshal(b, &e)
		if code != c.code || e.Field != c.field || !strings.Contains(e.Error, c.text) {
			t.Errorf("PUT %.50s (%s): %d %s; want %d, field %q, %q", c.body, c.ctype, code, b, c.code, c.field, c.text)
		}
	}
	if _, after, _ := call(t, "GET", u, ana, "", ""); !bytes.Equal(before, after) {
		t.Errorf("a refused PUT changed something:\n%s\n%s", before, after)
	}

	// Another person sees only their own.
	if _, b, _ := call(t, "GET", u, bo, "", ""); !view(t, b).Categories["marketing"]["email"] {
		t.Errorf("mem_bo sees mem_ana's choices: %s", b)
	}

	// A browser's preflight for a PUT from an allowed origin.
	req, _ := http.NewRequest("OPTIONS", u, nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if m, hs := res.Header.Get("Access-Control-Allow-Methods"), res.Header.Get("Access-Control-Allow-Headers"); !strings.Contains(m, "PUT") || !strings.Contains(hs, "Content-Type") {
		t.Errorf("preflight: methods %q, headers %q", m, hs)
	}

	// The store unreachable: 503, retry.
	srv.Stop()
	if code, _, h := call(t, "GET", u, ana, "", ""); code != 503 || h.Get("Retry-After") == "" {
		t.Errorf("GET with Redis down: %d", code)
	}
	if code, _, _ := call(t, "PUT", u, ana, jsonType, `{"channels":{"sms":false}}`); code != 503 {
		t.Errorf("PUT with Redis down: %d", code)
	}
}

// TestOneClickUnsubscribe: GET of a link shows a page and changes nothing;
// the POST of RFC 8058 switches the link's category off by email for its
// person, once however often it comes; forged, altered, expired and
// required-category links are refused and change nothing.
func TestOneClickUnsubscribe(t *testing.T) {
	now := time.Date(2026, 11, 20, 18, 0, 0, 0, time.UTC)
	store := prefs.NewMemory()
	gw := startPrefsGateway(t, store, now)
	tok, err := gw.signer.Issue("mem_ana", "marketing", notification.Email, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	link := unsubscribe.Link(gw.url, tok)
	stored := func() *prefs.Prefs {
		p, err := store.Get(context.Background(), "mem_ana")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	const form = "application/x-www-form-urlencoded"

	code, b, h := call(t, "GET", link, "", "", "")
	if code != 200 || !strings.Contains(string(b), `<form method="post" action="?token=`+tok+`">`) ||
		!strings.Contains(string(b), `name="List-Unsubscribe" value="One-Click"`) || !strings.Contains(string(b), "Offers and new classes.") {
		t.Fatalf("GET: %d %s", code, b)
	}
	if h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Errorf("GET headers: %v", h)
	}
	if !stored().Empty() {
		t.Fatal("GET changed the person's preferences (mail scanners fetch every link)")
	}
	if code, _, _ := call(t, "POST", link, "", form, "something=else"); code != 400 || !stored().Empty() {
		t.Fatalf("POST without List-Unsubscribe=One-Click: %d", code)
	}

	for i := 0; i < 2; i++ {
		code, b, _ := call(t, "POST", link, "", form, "List-Unsubscribe=One-Click")
		if code != 200 || !strings.Contains(string(b), "no longer get marketing messages by email") {
			t.Fatalf("POST %d: %d %s", i+1, code, b)
		}
	}
	if allow, ok := stored().Allows("marketing", notification.Email); allow || !ok {
		t.Fatalf("after the POST, marketing by email: %v, %v", allow, ok)
	}
	if allow, ok := stored().Allows("updates", notification.Email); ok {
		t.Fatalf("the POST decided updates too: %v", allow)
	}
	_, b, _ = call(t, "GET", gw.url+"/v1/preferences", token(t, "mem_ana"), "", "")
	if v := view(t, b); v.Categories["marketing"]["email"] || !v.Categories["updates"]["email"] {
		t.Fatalf("the person's view after unsubscribing: %s", b)
	}

	// The mailbox provider may post multipart/form-data.
	tok2, _ := gw.signer.Issue("mem_bo", "updates", notification.Email, now)
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("List-Unsubscribe", "One-Click")
	_ = mw.Close()
	if code, b, _ := call(t, "POST", unsubscribe.Link(gw.url, tok2), "", mw.FormDataContentType(), mp.String()); code != 200 {
		t.Fatalf("multipart POST: %d %s", code, b)
	}

	other, _ := unsubscribe.NewSigner([]byte("somebody-else's-secret-of-32-bytes"), 0)
	forged, _ := other.Issue("mem_cy", "marketing", notification.Email, now)
	expired, _ := gw.signer.Sign(unsubscribe.Token{Person: "mem_cy", Category: "marketing", Channel: notification.Email, Expires: now.Add(-time.Second)})
	required, _ := gw.signer.Issue("mem_cy", "transactional", notification.Email, now)
	p64, m64, _ := strings.Cut(tok, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(p64)
	tampered := base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte("mem_ana"), []byte("mem_cy_"), 1)) + "." + m64
	refused := []struct {
		name, token string
		code        int
		text        string
	}{
		{"forged", forged, 400, "not valid"},
		{"tampered", tampered, 400, "not valid"},
		{"cut short", tok[:len(tok)-3], 400, "not valid"},
		{"missing", "", 400, "not valid"},
		{"expired", expired, 410, "expired"},
		{"required category", required, 400, "cannot be switched off"},
	}
	for _, r := range refused {
		for _, method := range []string{"GET", "POST"} {
			code, b, _ := call(t, method, gw.url+unsubscribe.Path+"?token="+url.QueryEscape(r.token), "", form, "List-Unsubscribe=One-Click")
			if code != r.code || !strings.Contains(string(b), r.text) {
				t.Errorf("%s %s: %d %s; want %d saying %q", method, r.name, code, b, r.code, r.text)
			}
		}
	}
	if p, _ := store.Get(context.Background(), "mem_cy"); !p.Empty() {
		t.Errorf("a refused link changed mem_cy's preferences: %+v", p)
	}
}

// TestPreferencesOff: a gateway without a preferences store serves none of
// the endpoints, and one given half of what they need does not start.
func TestPreferencesOff(t *testing.T) {
	pods := startPods(t, feed.NewMemory(feed.Limits{}), 1, nil)
	for _, p := range []string{"/v1/preferences", unsubscribe.Path} {
		res, err := http.Get(pods[0].srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 404 && res.StatusCode != 405 {
			t.Errorf("GET %s without preferences: %d", p, res.StatusCode)
		}
	}
	signer, _ := unsubscribe.NewSigner(unsubSecret, 0)
	for name, o := range map[string]gateway.Options{
		"store without templates":     {Preferences: prefs.NewMemory()},
		"unsubscribe without a store": {Unsubscribe: signer},
	} {
		o.Feed, o.Authenticate = feed.NewMemory(feed.Limits{}), testAuth
		if _, err := gateway.New(o); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
