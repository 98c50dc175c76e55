package fcmfake_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/fcmfake"
)

var account = sync.OnceValues(fcmfake.NewServiceAccount)

var now = time.Date(2026, 11, 23, 7, 15, 0, 0, time.UTC)

type server struct {
	fake   *fcmfake.Fake
	outbox *sinks.Outbox
	srv    *httptest.Server
	sa     *fcmfake.ServiceAccount
}

func newServer(t *testing.T) *server {
	t.Helper()
	outbox := sinks.NewOutbox(0)
	fake := fcmfake.New(outbox, fcmfake.Options{ProjectID: "herald-dev", Now: func() time.Time { return now }})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	sa, err := account()
	if err != nil {
		t.Fatal(err)
	}
	js, err := sa.JSON(srv.URL + fcmfake.TokenPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.TrustServiceAccount(js); err != nil {
		t.Fatal(err)
	}
	return &server{fake: fake, outbox: outbox, srv: srv, sa: sa}
}

// assertion signs claims as RS256 with key, the way a JWT-bearer client does.
func assertion(t *testing.T, key *rsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := enc(header) + "." + enc(claims)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func (s *server) claims() map[string]any {
	return map[string]any{
		"iss": s.sa.ClientEmail, "scope": fcmfake.Scope, "aud": s.srv.URL + fcmfake.TokenPath,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func (s *server) tokenRequest(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(s.srv.URL+fcmfake.TokenPath, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestTokenEndpoint(t *testing.T) {
	s := newServer(t)
	header := map[string]any{"alg": "RS256", "typ": "JWT", "kid": s.sa.KeyID}
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(k string, v any) map[string]any {
		c := s.claims()
		c[k] = v
		return c
	}
	tests := []struct {
		name      string
		grant     string
		assertion string
		status    int
		errCode   string
	}{
		{"valid", "", assertion(t, s.sa.Key, header, s.claims()), 200, ""},
		{"no kid is fine", "", assertion(t, s.sa.Key, map[string]any{"alg": "RS256", "typ": "JWT"}, s.claims()), 200, ""},
		{"cloud-platform scope", "", assertion(t, s.sa.Key, header, edit("scope", "https://www.googleapis.com/auth/cloud-platform")), 200, ""},
		{"wrong grant", "client_credentials", assertion(t, s.sa.Key, header, s.claims()), 400, "unsupported_grant_type"},
		{"garbage", "", "not.a.jwt", 400, "invalid_grant"},
		{"alg none", "", assertion(t, s.sa.Key, map[string]any{"alg": "none"}, s.claims()), 400, "invalid_grant"},
		{"other key", "", assertion(t, other, header, s.claims()), 400, "invalid_grant"},
		{"wrong kid", "", assertion(t, s.sa.Key, map[string]any{"alg": "RS256", "kid": "abc"}, s.claims()), 400, "invalid_grant"},
		{"unknown issuer", "", assertion(t, s.sa.Key, header, edit("iss", "x@y.iam.gserviceaccount.com")), 400, "invalid_grant"},
		{"google audience", "", assertion(t, s.sa.Key, header, edit("aud", "https://oauth2.googleapis.com/token")), 400, "invalid_grant"},
		{"no scope", "", assertion(t, s.sa.Key, header, edit("scope", "")), 400, "invalid_scope"},
		{"expired", "", assertion(t, s.sa.Key, header, edit("exp", now.Add(-time.Hour).Unix())), 400, "invalid_grant"},
		{"too long-lived", "", assertion(t, s.sa.Key, header, edit("exp", now.Add(2*time.Hour).Unix())), 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			grant := tt.grant
			if grant == "" {
				grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
			}
			status, body := s.tokenRequest(t, url.Values{"grant_type": {grant}, "assertion": {tt.assertion}})
			if status != tt.status {
				t.Fatalf("status %d: %v", status, body)
			}
			if tt.errCode != "" {
				if body["error"] != tt.errCode || body["error_description"] == "" {
					t.Errorf("body %v", body)
				}
				return
			}
			if tok, _ := body["access_token"].(string); tok == "" || body["expires_in"] != float64(3600) || body["token_type"] != "Bearer" {
				t.Errorf("body %v", body)
			}
		})
	}
	if s.fake.TokenRequests() != len(tests) {
		t.Errorf("TokenRequests = %d, want %d", s.fake.TokenRequests(), len(tests))
	}
}

func (s *server) accessToken(t *testing.T) string {
	t.Helper()
	a := assertion(t, s.sa.Key, map[string]any{"alg": "RS256", "typ": "JWT"}, s.claims())
	status, body := s.tokenRequest(t, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {a}})
	if status != 200 {
		t.Fatalf("token: %d %v", status, body)
	}
	return body["access_token"].(string)
}

func (s *server) send(t *testing.T, project, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/v1/projects/"+project+"/messages:send", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	b.Write(raw)
	return resp.StatusCode, b.String()
}

func compact(s string) string {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSendErrorShapes(t *testing.T) {
	s := newServer(t)
	tok := s.accessToken(t)
	s.fake.Unregister("gone-token-123")
	msg := func(inner string) string { return `{"message":{` + inner + `}}` }
	tests := []struct {
		name    string
		project string
		token   string
		body    string
		status  int
		want    string // exact JSON, or "" to check only the status
	}{
		{"unregistered", "herald-dev", tok, msg(`"token":"gone-token-123"`), 404,
			`{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`},
		{"invalid token", "herald-dev", tok, msg(`"token":"bad token"`), 400,
			`{"error":{"code":400,"message":"The registration token is not a valid FCM registration token","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}`},
		{"lowercase priority", "herald-dev", tok, msg(`"token":"good-token-1","android":{"priority":"high"}`), 400, ""},
		{"unknown field", "herald-dev", tok, msg(`"token":"good-token-1","androidd":{}`), 400, ""},
		{"two targets", "herald-dev", tok, msg(`"token":"good-token-1","topic":"news"`), 400, ""},
		{"no bearer", "herald-dev", "", msg(`"token":"good-token-1"`), 401, ""},
		{"token not issued", "herald-dev", "ya29.forged", msg(`"token":"good-token-1"`), 401, ""},
		{"other project", "someone-else", tok, msg(`"token":"good-token-1"`), 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := s.send(t, tt.project, tt.token, tt.body)
			if status != tt.status {
				t.Fatalf("status %d: %s", status, body)
			}
			if tt.want != "" && compact(body) != compact(tt.want) {
				t.Errorf("body\n got %s\nwant %s", compact(body), compact(tt.want))
			}
		})
	}
	if s.outbox.Len() != 0 {
		t.Errorf("outbox %d", s.outbox.Len())
	}

	status, body := s.send(t, "herald-dev", tok, `{"validate_only":true,"message":{"token":"good-token-1"}}`)
	if status != 200 || body != `{"name":"projects/herald-dev/messages/fake_message_id"}` || s.outbox.Len() != 0 {
		t.Errorf("validate_only: %d %s, outbox %d", status, body, s.outbox.Len())
	}
	status, _ = s.send(t, "herald-dev", tok, msg(`"token":"good-token-1","notification":{"title":"T","body":"B"},"data":{"k":"v"},"android":{"priority":"HIGH"},"apns":{"headers":{"apns-priority":"10"}}`))
	if status != 200 || s.outbox.Len() != 1 || s.fake.Accepted() != 1 {
		t.Fatalf("send: %d", status)
	}
	d := s.outbox.All()[0]
	if d.To != "good-token-1" || d.Title != "T" || d.Text != "B" || d.Meta["k"] != "v" || d.Meta["android.priority"] != "HIGH" || d.Meta["apns-priority"] != "10" {
		t.Errorf("delivery %+v", d)
	}
	s.fake.RevokeTokens()
	if status, _ := s.send(t, "herald-dev", tok, msg(`"token":"good-token-1"`)); status != 401 {
		t.Errorf("revoked token: %d", status)
	}
}

func TestServiceAccountJSON(t *testing.T) {
	b, err := fcmfake.ServiceAccountJSON("http://127.0.0.1:9/token")
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]string
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"type", "project_id", "private_key_id", "private_key", "client_email", "client_id", "token_uri"} {
		if f[k] == "" {
			t.Errorf("%s is empty", k)
		}
	}
	if f["type"] != "service_account" || f["token_uri"] != "http://127.0.0.1:9/token" {
		t.Errorf("file %v", f)
	}
	block, _ := pem.Decode([]byte(f["private_key"]))
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatal("private_key is not PKCS #8 PEM")
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Fatal(err)
	}
	if err := fcmfake.New(sinks.NewOutbox(0), fcmfake.Options{}).TrustServiceAccount(b); err != nil {
		t.Fatal(err)
	}
	if err := fcmfake.New(sinks.NewOutbox(0), fcmfake.Options{}).TrustServiceAccount([]byte(`{"type":"authorized_user"}`)); err == nil {
		t.Error("trusted user credentials")
	}
}
