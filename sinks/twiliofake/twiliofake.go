// Package twiliofake is an in-process stand-in for Twilio's Messages API
// (POST /2010-04-01/Accounts/{AccountSid}/Messages.json) that speaks its wire
// format: HTTP basic auth with the account SID and auth token, form-encoded
// parameters, a 201 answer carrying Twilio's Message resource JSON, and
// Twilio's error JSON with its numeric codes. Mount it in an
// httptest.Server (tests) or an http.Server (`herald dev`) and point the SMS
// channel's APIURL at it, so that the real twilio-go client is exercised end
// to end.
//
// Every accepted message is recorded in a sinks.Outbox as a Delivery with
// Channel "sms", To, From (the Messaging Service SID when no From was sent),
// Text the body, ProviderID the message SID, and Meta the optional
// parameters as sent (MessagingServiceSid, ValidityPeriod, StatusCallback).
// Faults are injected per number (FailNumber) or for the next requests
// (FailNext, FailNextBody). It keeps no state beyond memory.
//
// With Options.StatusCallbacks on, a message created with a StatusCallback
// URL gets Twilio's status callbacks posted there, signed as Twilio signs
// them (X-Twilio-Signature with the AuthToken): "sent", then "delivered",
// or the final status and ErrorCode scripted for its number with
// DeliveryOutcome. They are posted in that order from one goroutine per
// message, started before the 201 answer is written, so a callback can
// reach its receiver before the sender has read the answer, as with
// Twilio. Off (the default), the fake sends nothing anywhere.
package twiliofake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/gymhq/herald/sinks"
)

// Options configure a Fake.
type Options struct {
	// AccountSID and AuthToken are the credentials the fake accepts. When
	// AuthToken is empty any password is accepted, and when AccountSID is
	// empty any account; basic auth must still be present and its user must
	// match the account in the path, as with Twilio.
	AccountSID string
	AuthToken  string
	// Now is the clock for date fields; time.Now when nil.
	Now func() time.Time
	// StatusCallbacks turns on posting signed status callbacks to each
	// message's StatusCallback URL (see the package comment).
	StatusCallbacks bool
	// CallbackClient posts the callbacks; a client with a 10-second
	// timeout when nil.
	CallbackClient *http.Client
}

// Callback is one status callback the fake posted.
type Callback struct {
	MessageSID string
	To         string
	URL        string
	Status     string // Twilio's MessageStatus: "sent", "delivered", "undelivered", "failed"
	ErrorCode  int    // 0 when none
	HTTPStatus int    // the receiver's answer, 0 when there was none
	Err        error  // why there was no answer
}

// outcome is a scripted final status for a number.
type outcome struct {
	status string
	code   int
}

// Fake is an http.Handler serving Twilio's Messages API. It is safe for
// concurrent use.
type Fake struct {
	outbox *sinks.Outbox
	opts   Options
	mux    *http.ServeMux

	requests atomic.Int64
	accepted atomic.Int64
	faults   sinks.Faults[fault] // has its own lock

	mu        sync.Mutex
	numbers   map[string]apiError
	outcomes  map[string]outcome
	callbacks []Callback

	posting sync.WaitGroup // status callbacks not yet posted
}

type fault struct {
	status int
	code   int
	body   string // raw body instead of Twilio's JSON when set
}

// apiError is Twilio's error JSON.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// New returns a Fake recording accepted messages in outbox.
func New(outbox *sinks.Outbox, opts Options) *Fake {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CallbackClient == nil {
		opts.CallbackClient = &http.Client{Timeout: 10 * time.Second}
	}
	f := &Fake{outbox: outbox, opts: opts, numbers: map[string]apiError{}, outcomes: map[string]outcome{}, mux: http.NewServeMux()}
	f.mux.HandleFunc("POST /2010-04-01/Accounts/{AccountSid}/Messages.json", f.createMessage)
	f.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, 20404, fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
	})
	return f
}

func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// FailNumber makes every message to the number to fail with the given HTTP
// status and Twilio error code, e.g. (400, 21211) for an invalid number or
// (400, 21610) for a recipient who replied STOP. An empty message uses
// Twilio's wording for known codes. A status of 0 clears the failure.
func (f *Fake) FailNumber(to string, httpStatus int, code int, message string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if httpStatus == 0 {
		delete(f.numbers, to)
		return
	}
	if message == "" {
		message = defaultMessage(code, to)
	}
	f.numbers[to] = newAPIError(httpStatus, code, message)
}

// FailNext makes the next n requests that pass authentication fail with
// the HTTP status and Twilio error code, e.g. (429, 20429) or (503, 0). A
// code of 0 picks Twilio's generic code for the status.
func (f *Fake) FailNext(n, status, code int) {
	f.faults.Queue(n, fault{status: status, code: code})
}

// FailNextBody makes the next n requests fail with the HTTP status and a raw
// body that is not Twilio's error JSON, as a proxy or load balancer in front
// of Twilio would answer.
func (f *Fake) FailNextBody(n, status int, body string) {
	f.faults.Queue(n, fault{status: status, body: body})
}

// FailRatio makes the share p of the requests that pass authentication
// fail with the HTTP status and Twilio error code, spread evenly (see
// sinks.Ratio), after any FailNext faults. p = 0 turns it off.
func (f *Fake) FailRatio(p float64, status, code int) {
	f.faults.SetRatio(p, fault{status: status, code: code})
}

// DeliveryOutcome scripts the final status callback for messages to the
// number: status "undelivered" or "failed" with Twilio's ErrorCode (e.g.
// 30005 unknown handset, 21610 unsubscribed, 30003 unreachable), or
// "delivered" with code 0. An empty status restores the default,
// "delivered". It matters only with Options.StatusCallbacks.
func (f *Fake) DeliveryOutcome(to, status string, errorCode int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status == "" {
		delete(f.outcomes, to)
		return
	}
	f.outcomes[to] = outcome{status: status, code: errorCode}
}

// WaitCallbacks blocks until every status callback of the messages accepted
// so far has been posted and answered (or has failed).
func (f *Fake) WaitCallbacks() { f.posting.Wait() }

// Callbacks returns the status callbacks posted so far, in the order they
// were answered.
func (f *Fake) Callbacks() []Callback {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Callback(nil), f.callbacks...)
}

// Requests counts every request to the Messages endpoint.
func (f *Fake) Requests() int { return int(f.requests.Load()) }

// Accepted counts messages answered with 201.
func (f *Fake) Accepted() int { return int(f.accepted.Load()) }

var (
	// Real numbers have at least 7 digits; Twilio rejects shorter ones.
	e164          = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	shortCode     = regexp.MustCompile(`^[0-9]{3,8}$`)
	alphanumeric  = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	hasLetter     = regexp.MustCompile(`[A-Za-z]`)
	messagingSID  = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	channelPrefix = regexp.MustCompile(`^[a-z]+:`)
)

func (f *Fake) createMessage(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	account := r.PathValue("AccountSid")
	user, pass, ok := r.BasicAuth()
	if !ok || user != account ||
		(f.opts.AccountSID != "" && user != f.opts.AccountSID) ||
		(f.opts.AuthToken != "" && pass != f.opts.AuthToken) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 20001, "Unable to parse request body")
		return
	}
	if ft, ok := f.faults.Take(); ok {
		if ft.body != "" {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(ft.status)
			fmt.Fprint(w, ft.body)
			return
		}
		code := ft.code
		if code == 0 {
			code = genericCode(ft.status)
		}
		writeError(w, ft.status, code, defaultMessage(code, r.PostForm.Get("To")))
		return
	}

	to := r.PostForm.Get("To")
	from := r.PostForm.Get("From")
	service := r.PostForm.Get("MessagingServiceSid")
	body := r.PostForm.Get("Body")
	validity := r.PostForm.Get("ValidityPeriod")
	switch {
	case to == "":
		writeError(w, http.StatusBadRequest, 21604, defaultMessage(21604, ""))
		return
	case !e164.MatchString(to) && !channelPrefix.MatchString(to):
		writeError(w, http.StatusBadRequest, 21211, defaultMessage(21211, to))
		return
	case from == "" && service == "":
		writeError(w, http.StatusBadRequest, 21603, defaultMessage(21603, ""))
		return
	case from != "" && !validFrom(from):
		writeError(w, http.StatusBadRequest, 21212, fmt.Sprintf("The 'From' number %s is not a valid phone number, shortcode, or alphanumeric sender ID.", from))
		return
	case service != "" && !messagingSID.MatchString(service):
		writeError(w, http.StatusBadRequest, 21701, fmt.Sprintf("The Messaging Service Sid %s is invalid.", service))
		return
	case body == "":
		writeError(w, http.StatusBadRequest, 21602, defaultMessage(21602, ""))
		return
	case len([]rune(body)) > 1600:
		writeError(w, http.StatusBadRequest, 21617, defaultMessage(21617, ""))
		return
	}
	if validity != "" {
		if v, err := strconv.Atoi(validity); err != nil || v < 1 || v > 36000 {
			writeError(w, http.StatusBadRequest, 21624, defaultMessage(21624, ""))
			return
		}
	}
	f.mu.Lock()
	numErr, failed := f.numbers[to]
	f.mu.Unlock()
	if failed {
		writeJSON(w, numErr.Status, numErr)
		return
	}

	sid := newSID("SM")
	now := f.opts.Now().UTC()
	meta := map[string]string{}
	for _, k := range []string{"MessagingServiceSid", "ValidityPeriod", "StatusCallback"} {
		if v := r.PostForm.Get(k); v != "" {
			meta[k] = v
		}
	}
	deliveredFrom := from
	if deliveredFrom == "" {
		deliveredFrom = service
	}
	f.outbox.Add(sinks.Delivery{
		Channel:    "sms",
		To:         to,
		From:       deliveredFrom,
		Text:       body,
		ProviderID: sid,
		Meta:       meta,
		At:         now,
	})
	f.accepted.Add(1)
	if cb := r.PostForm.Get("StatusCallback"); cb != "" && f.opts.StatusCallbacks {
		f.mu.Lock()
		final, ok := f.outcomes[to]
		f.mu.Unlock()
		if !ok {
			final = outcome{status: "delivered"}
		}
		base := url.Values{
			"AccountSid": {account}, "ApiVersion": {"2010-04-01"}, "MessageSid": {sid}, "SmsSid": {sid},
			"To": {to}, "From": {deliveredFrom},
		}
		if service != "" {
			base.Set("MessagingServiceSid", service)
		}
		f.posting.Add(1)
		go func() {
			defer f.posting.Done()
			f.postCallback(cb, base, outcome{status: "sent"})
			f.postCallback(cb, base, final)
		}()
	}
	writeJSON(w, http.StatusCreated, messageResource(account, sid, to, from, service, body, now))
}

// postCallback posts one status callback as Twilio does: form-encoded,
// signed with X-Twilio-Signature.
func (f *Fake) postCallback(callbackURL string, base url.Values, o outcome) {
	form := url.Values{}
	for k, v := range base {
		form[k] = v
	}
	form.Set("MessageStatus", o.status)
	form.Set("SmsStatus", o.status)
	if o.code != 0 {
		form.Set("ErrorCode", strconv.Itoa(o.code))
	}
	rec := Callback{MessageSID: base.Get("MessageSid"), To: base.Get("To"), URL: callbackURL, Status: o.status, ErrorCode: o.code}
	req, err := http.NewRequest(http.MethodPost, callbackURL, strings.NewReader(form.Encode()))
	if err == nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", "TwilioProxy/1.1")
		req.Header.Set("X-Twilio-Signature", Signature(f.opts.AuthToken, callbackURL, form))
		var resp *http.Response
		if resp, err = f.opts.CallbackClient.Do(req); err == nil {
			rec.HTTPStatus = resp.StatusCode
			_ = resp.Body.Close()
		}
	}
	rec.Err = err
	f.mu.Lock()
	f.callbacks = append(f.callbacks, rec)
	f.mu.Unlock()
}

// Signature is Twilio's X-Twilio-Signature for a form-encoded POST to
// fullURL: HMAC-SHA1 keyed with the auth token over the URL followed by
// each parameter's name and value, names sorted, base64-encoded. Tests use
// it to sign requests of their own.
func Signature(authToken, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		for _, v := range form[k] {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func validFrom(from string) bool {
	return e164.MatchString(from) || shortCode.MatchString(from) ||
		(alphanumeric.MatchString(from) && hasLetter.MatchString(from)) ||
		channelPrefix.MatchString(from)
}

// messageResource is Twilio's Message resource as answered on creation.
// A message sent through a Messaging Service without From starts as
// "accepted" with no sender yet; one with From starts as "queued".
func messageResource(account, sid, to, from, service, body string, now time.Time) map[string]any {
	status, segments := "queued", strconv.Itoa(Segments(body))
	var fromField any = from
	if from == "" {
		status, segments, fromField = "accepted", "0", nil
	}
	var serviceField any
	if service != "" {
		serviceField = service
	}
	date := now.Format(time.RFC1123Z)
	uri := fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s", account, sid)
	return map[string]any{
		"account_sid":           account,
		"api_version":           "2010-04-01",
		"body":                  body,
		"date_created":          date,
		"date_sent":             nil,
		"date_updated":          date,
		"direction":             "outbound-api",
		"error_code":            nil,
		"error_message":         nil,
		"from":                  fromField,
		"messaging_service_sid": serviceField,
		"num_media":             "0",
		"num_segments":          segments,
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   sid,
		"status":                status,
		"subresource_uris":      map[string]string{"media": uri + "/Media.json"},
		"to":                    to,
		"uri":                   uri + ".json",
	}
}

func newAPIError(status, code int, message string) apiError {
	return apiError{
		Code:     code,
		Message:  message,
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		Status:   status,
	}
}

func writeError(w http.ResponseWriter, status, code int, message string) {
	writeJSON(w, status, newAPIError(status, code, message))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// genericCode follows Twilio's pattern for HTTP-level errors: 20000 plus the
// status (20404, 20429, 20500, 20503), except 401, which is 20003.
func genericCode(status int) int {
	if status == http.StatusUnauthorized {
		return 20003
	}
	return 20000 + status
}

// defaultMessage is Twilio's wording for the codes herald meets.
func defaultMessage(code int, to string) string {
	switch code {
	case 20003:
		return "Authenticate"
	case 20429:
		return "Too Many Requests"
	case 20500:
		return "An internal server error has occurred"
	case 20503:
		return "Service is unavailable. Please try again"
	case 21211:
		return fmt.Sprintf("The 'To' number %s is not a valid phone number.", to)
	case 21408:
		return fmt.Sprintf("Permission to send an SMS has not been enabled for the region indicated by the 'To' number: %s.", to)
	case 21602:
		return "Message body is required."
	case 21603:
		return "A 'From' phone number is required."
	case 21604:
		return "A 'To' phone number is required."
	case 21610:
		return "Attempt to send to unsubscribed recipient"
	case 21612:
		return fmt.Sprintf("The 'To' phone number: %s, is not currently reachable using the 'From' phone number via SMS.", to)
	case 21614:
		return fmt.Sprintf("'To' number %s is not a valid mobile number", to)
	case 21617:
		return "The concatenated message body exceeds the 1600 character limit."
	case 21624:
		return "Invalid validity period value"
	}
	return fmt.Sprintf("Error %d", code)
}

func newSID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// GSM 03.38: the basic set costs one septet, the extension set two.
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtension = "^{}\\[~]|€\f"
)

// Segments is how many SMS segments Twilio bills for body: GSM-7 when every
// character is in the GSM 03.38 sets (160 septets, 153 per part when
// concatenated), UCS-2 otherwise (70 code units, 67 per part).
func Segments(body string) int {
	septets, gsm := 0, true
	for _, r := range body {
		switch {
		case strings.ContainsRune(gsmBasic, r):
			septets++
		case strings.ContainsRune(gsmExtension, r):
			septets += 2
		default:
			gsm = false
		}
	}
	if gsm {
		return parts(septets, 160, 153)
	}
	return parts(len(utf16.Encode([]rune(body))), 70, 67)
}

func parts(n, single, multi int) int {
	if n <= single {
		return 1
	}
	return (n + multi - 1) / multi
}
