// Package fcmfake is an in-process stand-in for Firebase Cloud Messaging's
// HTTP v1 API and for the Google OAuth 2.0 token endpoint in front of it. It
// speaks their wire formats: the JWT-bearer grant (RFC 7523) with an RS256
// assertion signed by a service account's key, Bearer access tokens, POST
// /v1/projects/{project}/messages:send with FCM's message JSON, and Google's
// error JSON with FCM's error codes in its details.
//
// Mount it in an httptest.Server (tests) or an http.Server (`herald dev`),
// write a service-account key file whose token_uri is the server's URL plus
// TokenPath (ServiceAccountJSON), let the fake trust it
// (TrustServiceAccount), and point the push channel at both, so that the real
// OAuth2 client and the push sender are exercised end to end.
//
// Every accepted message is recorded in a sinks.Outbox as a Delivery with
// Channel "push", To the device token, Title and Text (body) from the
// notification, ProviderID the message name, and Meta the data payload plus
// "android.priority" and "apns-priority" as sent. Faults are injected
// per token (Unregister, FailToken) or for the next requests (FailNext,
// FailNextBody, FailNextToken). It sends nothing anywhere and keeps no state
// beyond memory.
package fcmfake

import (
	"cmp"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gymhq/herald/sinks"
)

// TokenPath is where the fake serves the OAuth 2.0 token endpoint.
const TokenPath = "/token"

// Scope is the OAuth scope for sending with FCM.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

const (
	cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"
	jwtBearerGrant     = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	fcmErrorType       = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	badRequestType     = "type.googleapis.com/google.rpc.BadRequest"
	maxPayload         = 4096 // FCM's limit on data plus notification, in bytes
)

// Options configure a Fake.
type Options struct {
	// ProjectID, when set, is the only project the fake sends for; others
	// are answered 403 PERMISSION_DENIED. Empty accepts any project.
	ProjectID string
	// TokenTTL is the lifetime of issued access tokens; one hour when zero.
	TokenTTL time.Duration
	// RetryAfter, when positive, is sent as Retry-After with injected 429
	// and 503 answers.
	RetryAfter time.Duration
	// Now is the clock for token lifetimes and JWT checks; time.Now when nil.
	Now func() time.Time
}

// Fake is an http.Handler serving FCM's send endpoint and the token
// endpoint. It is safe for concurrent use.
type Fake struct {
	outbox *sinks.Outbox
	opts   Options
	mux    *http.ServeMux

	tokenRequests atomic.Int64
	sendRequests  atomic.Int64
	accepted      atomic.Int64
	faults        sinks.Faults[fault] // has its own lock

	mu         sync.Mutex
	accounts   map[string]trusted // by client_email
	issued     map[string]time.Time
	tokenFails map[string]fault
	nextToken  []int
}

type fault struct {
	status    int
	errorCode string // FCM error code for the FcmError detail; may be empty
	body      string // raw body instead of Google's JSON when set
}

// New returns a Fake recording accepted messages in outbox.
func New(outbox *sinks.Outbox, opts Options) *Fake {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &Fake{
		outbox:     outbox,
		opts:       opts,
		mux:        http.NewServeMux(),
		accounts:   map[string]trusted{},
		issued:     map[string]time.Time{},
		tokenFails: map[string]fault{},
	}
	f.mux.HandleFunc("POST "+TokenPath, f.token)
	f.mux.HandleFunc("POST /v1/projects/{project}/messages:send", f.send)
	f.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeGoogleError(w, http.StatusNotFound, "", fmt.Sprintf("The requested URL %s was not found on this server.", r.URL.Path), nil)
	})
	return f
}

func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// TrustServiceAccount makes the token endpoint accept assertions signed with
// the key in serviceAccountJSON, issued by its client_email, for the
// audience of its token_uri.
func (f *Fake) TrustServiceAccount(serviceAccountJSON []byte) error {
	email, t, err := parseServiceAccount(serviceAccountJSON)
	if err != nil {
		return fmt.Errorf("fcmfake: %w", err)
	}
	f.mu.Lock()
	f.accounts[email] = t
	f.mu.Unlock()
	return nil
}

// Unregister makes sends to token fail as FCM answers for an app that was
// uninstalled: 404 NOT_FOUND with FCM error code UNREGISTERED.
func (f *Fake) Unregister(token string) { f.FailToken(token, http.StatusNotFound, "UNREGISTERED") }

// FailToken makes every send to token fail with the HTTP status and FCM
// error code (e.g. 403 "SENDER_ID_MISMATCH", 400 "INVALID_ARGUMENT"). A
// status of 0 clears it.
func (f *Fake) FailToken(token string, status int, fcmErrorCode string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status == 0 {
		delete(f.tokenFails, token)
		return
	}
	f.tokenFails[token] = fault{status: status, errorCode: fcmErrorCode}
}

// FailNext makes the next n authenticated sends fail with the HTTP status
// and FCM error code, e.g. (429, "QUOTA_EXCEEDED"), (503, "UNAVAILABLE"),
// (401, "THIRD_PARTY_AUTH_ERROR"). An empty code sends no FcmError detail.
func (f *Fake) FailNext(n, status int, fcmErrorCode string) {
	f.faults.Queue(n, fault{status: status, errorCode: fcmErrorCode})
}

// FailRatio makes the share p of authenticated sends fail with the HTTP
// status and FCM error code, spread evenly (see sinks.Ratio), after any
// FailNext faults. p = 0 turns it off.
func (f *Fake) FailRatio(p float64, status int, fcmErrorCode string) {
	f.faults.SetRatio(p, fault{status: status, errorCode: fcmErrorCode})
}

// FailNextBody makes the next n authenticated sends fail with the HTTP
// status and a raw body that is not Google's error JSON, as a proxy in front
// of FCM would answer.
func (f *Fake) FailNextBody(n, status int, body string) {
	f.faults.Queue(n, fault{status: status, body: body})
}

// FailNextToken makes the next n token requests fail with the HTTP status
// and Google's OAuth error JSON.
func (f *Fake) FailNextToken(n, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.nextToken = append(f.nextToken, status)
	}
}

// RevokeTokens invalidates every access token issued so far, as a key
// deletion or rotation does.
func (f *Fake) RevokeTokens() {
	f.mu.Lock()
	clear(f.issued)
	f.mu.Unlock()
}

// TokenRequests counts requests to the token endpoint.
func (f *Fake) TokenRequests() int { return int(f.tokenRequests.Load()) }

// SendRequests counts requests to the send endpoint.
func (f *Fake) SendRequests() int { return int(f.sendRequests.Load()) }

// Accepted counts messages answered with 200 (validate_only excluded).
func (f *Fake) Accepted() int { return int(f.accepted.Load()) }

// token serves the JWT-bearer grant as Google's token endpoint does.
func (f *Fake) token(w http.ResponseWriter, r *http.Request) {
	f.tokenRequests.Add(1)
	if status, ok := f.takeTokenFault(); ok {
		code, desc := "invalid_grant", "Invalid grant: account not found"
		if status >= 500 {
			code, desc = "internal_failure", "Backend Error"
		}
		writeOAuthError(w, status, code, desc)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Could not parse request body")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != jwtBearerGrant {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+gt)
		return
	}
	if errCode, errDesc := f.verifyAssertion(r.PostForm.Get("assertion")); errCode != "" {
		writeOAuthError(w, http.StatusBadRequest, errCode, errDesc)
		return
	}
	access := "ya29.fake-" + randomHex(32)
	f.mu.Lock()
	f.issued[access] = f.opts.Now().Add(f.opts.TokenTTL)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": access,
		"expires_in":   int(f.opts.TokenTTL / time.Second),
		"token_type":   "Bearer",
	})
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

type jwtClaims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Exp   int64  `json:"exp"`
	Iat   int64  `json:"iat"`
	Sub   string `json:"sub"`
}

// verifyAssertion checks the assertion as Google does: an RS256 JWT signed
// by a trusted service account's key, for that account's token URI, asking
// for a usable scope, and short-lived. It returns an OAuth error code and
// description on failure.
func (f *Fake) verifyAssertion(assertion string) (errCode, errDesc string) {
	var h jwtHeader
	var c jwtClaims
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 || decodeSegment(parts[0], &h) != nil || decodeSegment(parts[1], &c) != nil {
		return "invalid_grant", "Invalid JWT: malformed assertion"
	}
	if h.Alg != "RS256" {
		return "invalid_grant", fmt.Sprintf("Invalid JWT: unsupported algorithm %q", h.Alg)
	}
	f.mu.Lock()
	acct, ok := f.accounts[c.Iss]
	f.mu.Unlock()
	if !ok {
		return "invalid_grant", "Invalid grant: account not found"
	}
	if h.Kid != "" && h.Kid != acct.keyID {
		return "invalid_grant", "Invalid JWT Signature."
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "invalid_grant", "Invalid JWT Signature."
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(acct.key, crypto.SHA256, digest[:], sig) != nil {
		return "invalid_grant", "Invalid JWT Signature."
	}
	if c.Aud != acct.tokenURI {
		return "invalid_grant", "Invalid JWT: Failed audience check. The right audience is " + acct.tokenURI
	}
	scopes := strings.Fields(c.Scope)
	if !slices.Contains(scopes, Scope) && !slices.Contains(scopes, cloudPlatformScope) {
		return "invalid_scope", "Invalid OAuth scope or ID token audience provided."
	}
	now := f.opts.Now().Unix()
	const skew = 5 * 60
	if c.Iat == 0 || c.Exp == 0 || c.Iat > now+skew || c.Exp < now-skew || c.Exp-c.Iat > 3600 {
		return "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	}
	return "", ""
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// sendRequest is FCM v1's request body. Unknown fields are refused as
// Google does, so a misspelt field fails in tests rather than being
// silently ignored in production.
type sendRequest struct {
	ValidateOnly bool        `json:"validate_only"`
	Message      *fcmMessage `json:"message"`
}

type fcmMessage struct {
	Name         string            `json:"name"`
	Token        string            `json:"token"`
	Topic        string            `json:"topic"`
	Condition    string            `json:"condition"`
	Data         map[string]string `json:"data"`
	Notification *struct {
		Title string `json:"title"`
		Body  string `json:"body"`
		Image string `json:"image"`
	} `json:"notification"`
	Android *struct {
		CollapseKey           string          `json:"collapse_key"`
		Priority              string          `json:"priority"`
		TTL                   string          `json:"ttl"`
		RestrictedPackageName string          `json:"restricted_package_name"`
		Data                  json.RawMessage `json:"data"`
		Notification          json.RawMessage `json:"notification"`
		FCMOptions            json.RawMessage `json:"fcm_options"`
		DirectBootOK          bool            `json:"direct_boot_ok"`
	} `json:"android"`
	APNS *struct {
		Headers    map[string]string `json:"headers"`
		Payload    json.RawMessage   `json:"payload"`
		FCMOptions json.RawMessage   `json:"fcm_options"`
	} `json:"apns"`
	Webpush    json.RawMessage `json:"webpush"`
	FCMOptions json.RawMessage `json:"fcm_options"`
}

var tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_:.\-]{8,1000}$`)

func (f *Fake) send(w http.ResponseWriter, r *http.Request) {
	f.sendRequests.Add(1)
	if !f.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/"`)
		writeGoogleError(w, http.StatusUnauthorized, "", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.", nil)
		return
	}
	project := r.PathValue("project")
	if f.opts.ProjectID != "" && project != f.opts.ProjectID {
		writeGoogleError(w, http.StatusForbidden, "", fmt.Sprintf("Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/%s' (or it may not exist).", project), nil)
		return
	}
	if ft, ok := f.faults.Take(); ok {
		f.writeFault(w, ft)
		return
	}
	var req sendRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeGoogleError(w, http.StatusBadRequest, "", "Invalid JSON payload received. "+err.Error(), nil)
		return
	}
	m := req.Message
	if m == nil {
		writeGoogleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Request contains an invalid argument.", violation("message", "message is required"))
		return
	}
	if problem := validate(m); problem != nil {
		writeGoogleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", problem.message, violation(problem.field, problem.message))
		return
	}
	if m.Token != "" && !tokenPattern.MatchString(m.Token) {
		writeGoogleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", nil)
		return
	}
	f.mu.Lock()
	ft, failed := f.tokenFails[m.Token]
	f.mu.Unlock()
	if failed {
		f.writeFault(w, ft)
		return
	}

	name := fmt.Sprintf("projects/%s/messages/0:%d%%%s", project, f.opts.Now().UnixMicro(), randomHex(8))
	if req.ValidateOnly {
		name = fmt.Sprintf("projects/%s/messages/fake_message_id", project)
	} else {
		f.record(m, name)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]string{"name": name})
}

func (f *Fake) record(m *fcmMessage, name string) {
	d := sinks.Delivery{Channel: "push", To: m.Token, ProviderID: name, Meta: map[string]string{}, At: f.opts.Now()}
	if m.Token == "" {
		d.To = cmp.Or(m.Topic, m.Condition)
	}
	if m.Notification != nil {
		d.Title, d.Text = m.Notification.Title, m.Notification.Body
	}
	for k, v := range m.Data {
		d.Meta[k] = v
	}
	if m.Android != nil && m.Android.Priority != "" {
		d.Meta["android.priority"] = m.Android.Priority
	}
	if m.APNS != nil && m.APNS.Headers["apns-priority"] != "" {
		d.Meta["apns-priority"] = m.APNS.Headers["apns-priority"]
	}
	f.outbox.Add(d)
	f.accepted.Add(1)
}

type problem struct{ field, message string }

// validate applies the checks of FCM that a sender can get wrong.
func validate(m *fcmMessage) *problem {
	targets := 0
	for _, t := range []string{m.Token, m.Topic, m.Condition} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		return &problem{"message", "Exactly one of token, topic or condition must be specified."}
	}
	size := 0
	for k, v := range m.Data {
		if k == "from" || k == "notification" || k == "message_type" || strings.HasPrefix(k, "google.") || strings.HasPrefix(k, "gcm.") {
			return &problem{"message.data", fmt.Sprintf("Invalid data payload key: %s", k)}
		}
		size += len(k) + len(v)
	}
	if m.Notification != nil {
		size += len(m.Notification.Title) + len(m.Notification.Body)
	}
	if size > maxPayload {
		return &problem{"message", "Message is too big"}
	}
	if m.Android != nil {
		switch m.Android.Priority {
		case "", "NORMAL", "HIGH":
		default:
			return &problem{"message.android.priority", fmt.Sprintf("Invalid value at 'message.android.priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidConfig.AndroidMessagePriority), %q", m.Android.Priority)}
		}
	}
	if m.APNS != nil {
		switch p := m.APNS.Headers["apns-priority"]; p {
		case "", "1", "5", "10":
		default:
			return &problem{"message.apns.headers", fmt.Sprintf("Invalid APNs priority %q", p)}
		}
	}
	return nil
}

func (f *Fake) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	exp, ok := f.issued[tok]
	return ok && f.opts.Now().Before(exp)
}

func (f *Fake) takeTokenFault() (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.nextToken) == 0 {
		return 0, false
	}
	st := f.nextToken[0]
	f.nextToken = f.nextToken[1:]
	return st, true
}

func (f *Fake) writeFault(w http.ResponseWriter, ft fault) {
	if (ft.status == http.StatusTooManyRequests || ft.status == http.StatusServiceUnavailable) && f.opts.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(f.opts.RetryAfter.Round(time.Second)/time.Second)))
	}
	if ft.body != "" {
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(ft.status)
		fmt.Fprint(w, ft.body)
		return
	}
	writeGoogleError(w, ft.status, ft.errorCode, defaultMessage(ft.errorCode, ft.status), nil)
}

// defaultMessage is FCM's wording for its error codes.
func defaultMessage(code string, status int) string {
	switch code {
	case "UNREGISTERED":
		return "Requested entity was not found."
	case "INVALID_ARGUMENT":
		return "Request contains an invalid argument."
	case "SENDER_ID_MISMATCH":
		return "SenderId mismatch"
	case "QUOTA_EXCEEDED":
		return "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' of service 'fcm.googleapis.com'."
	case "UNAVAILABLE":
		return "The service is currently unavailable."
	case "INTERNAL":
		return "Internal error encountered."
	case "THIRD_PARTY_AUTH_ERROR":
		return "Auth error from APNS or Web Push Service"
	}
	return http.StatusText(status)
}

// googleStatus is the canonical status Google pairs with an HTTP status.
func googleStatus(httpStatus int) string {
	switch httpStatus {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ABORTED"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case 500:
		return "INTERNAL"
	case 501:
		return "UNIMPLEMENTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	return "UNKNOWN"
}

func violation(field, description string) map[string]any {
	return map[string]any{
		"@type":           badRequestType,
		"fieldViolations": []map[string]string{{"field": field, "description": description}},
	}
}

// writeGoogleError writes Google's error JSON; fcmCode, when set, becomes an
// FcmError detail, and extra details follow it.
func writeGoogleError(w http.ResponseWriter, status int, fcmCode, message string, extra map[string]any) {
	var details []map[string]any
	if fcmCode != "" {
		details = append(details, map[string]any{"@type": fcmErrorType, "errorCode": fcmCode})
	}
	if extra != nil {
		details = append(details, extra)
	}
	body := map[string]any{"code": status, "message": message, "status": googleStatus(status)}
	if details != nil {
		body["details"] = details
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": body})
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
