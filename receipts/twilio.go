package receipts

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	"go.uber.org/zap"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/suppress"
)

// ProviderTwilio is the Provider of SMS receipts.
const ProviderTwilio = "twilio"

// TwilioPath is where the gateway mounts the Twilio status callback.
const TwilioPath = "/v1/receipts/twilio"

// DefaultMaxBody bounds a status callback's body. Twilio's are well under
// 2 KiB.
const DefaultMaxBody = 64 << 10

// Suppressor is the part of suppress.Store the handler needs.
type Suppressor interface {
	Add(ctx context.Context, channel, address, reason string) error
}

// twilioCode is one row of the code table.
type twilioCode struct {
	detail   string
	suppress failure.Reason // "" when the code says nothing about the address
}

// twilioCodes: see DescribeTwilioCode.
var twilioCodes = map[int]twilioCode{
	21211: {"invalid 'To' phone number", failure.ReasonInvalidAddress},
	21610: {"recipient unsubscribed (replied STOP)", failure.ReasonUnsubscribed},
	21612: {"'To' not reachable from this sender", ""},
	21614: {"'To' is not a mobile number", failure.ReasonInvalidAddress},
	30001: {"queue overflow", ""},
	30002: {"account suspended", ""},
	30003: {"unreachable destination handset", ""},
	30004: {"message blocked", ""},
	30005: {"unknown destination handset", failure.ReasonInvalidAddress},
	30006: {"landline or unreachable carrier", failure.ReasonInvalidAddress},
	30007: {"carrier violation (filtered)", ""},
	30008: {"unknown error", ""},
	30034: {"unregistered 10DLC sender", ""},
}

// DescribeTwilioCode returns what a Twilio ErrorCode on a status callback
// means, and the suppression reason it feeds ("" for none). The table:
//
//	code   meaning                               the address
//	21211  invalid 'To' phone number             suppressed, invalid_address
//	21614  'To' is not a mobile number           suppressed, invalid_address
//	30005  unknown destination handset           suppressed, invalid_address
//	30006  landline or unreachable carrier       suppressed, invalid_address
//	21610  recipient unsubscribed (STOP)         suppressed, unsubscribed
//	21612  'To' not reachable from this sender   kept (a sender problem)
//	30001  queue overflow                        kept
//	30002  account suspended                     kept (our account)
//	30003  unreachable destination handset       kept (phone off, out of coverage)
//	30004  message blocked                       kept (may be temporary or per sender)
//	30007  carrier violation (filtered)          kept (the content, not the address)
//	30008  unknown error                         kept
//	30034  unregistered 10DLC sender             kept (our registration)
//
// Any other code is undelivered only. Suppression happens only on a final
// undelivered or failed status, and only with reasons package suppress
// accepts for SMS (suppress.Feeds), so a phone that is merely off today is
// never suppressed for good.
func DescribeTwilioCode(code string) (detail string, suppressAs failure.Reason) {
	n, err := strconv.Atoi(code)
	if err != nil {
		return "", ""
	}
	c, ok := twilioCodes[n]
	if !ok {
		return "twilio error " + code, ""
	}
	return c.detail, c.suppress
}

// twilioStatus maps Twilio's MessageStatus to a Status; ok is false for a
// status this package does not track (inbound messages, partially
// delivered multi-part messages).
func twilioStatus(s string) (Status, bool) {
	switch s {
	case "accepted", "scheduled", "queued", "sending":
		return StatusAccepted, true
	case "sent":
		return StatusSent, true
	case "delivered", "read":
		return StatusDelivered, true
	case "undelivered":
		return StatusUndelivered, true
	case "failed", "canceled":
		return StatusFailed, true
	}
	return "", false
}

// TwilioOptions configure TwilioHandler.
type TwilioOptions struct {
	// PublicURL is the callback's URL exactly as Twilio is given it in
	// StatusCallback (scheme, host, port if any, path), without a query:
	// Twilio signs the URL it posted to, which a proxy in front of herald
	// hides from the request. A query on the request is appended to it.
	PublicURL string
	// AuthTokens are the account's auth tokens a signature may be made
	// with; during a rotation, the new one and the old one.
	AuthTokens []string
	// Store records the statuses. Required.
	Store Store
	// Suppressor is fed the addresses the code table suppresses; nil turns
	// suppression from receipts off.
	Suppressor Suppressor
	// Metrics counts receipts and callbacks; nil counts nothing.
	Metrics *Metrics
	// OnOutcome is called with every receipt that reached a final status
	// through this handler, after it was stored (and its address
	// suppressed); nil for none. Its NotificationID is empty when the
	// callback beat the worker's Accepted. It runs on the request's
	// goroutine and must not block: feed an UndeliveredRate or a trace
	// from it.
	OnOutcome func(Receipt)
	// Logger logs one line per callback that changed a receipt or was
	// refused; nil logs nothing.
	Logger *zap.Logger
	// MaxBody bounds the request body; DefaultMaxBody when <= 0.
	MaxBody int64
	// Clock stamps receipts; time.Now when nil.
	Clock func() time.Time
}

// Twilio is the http.Handler for Twilio's message status callbacks (POST,
// form-encoded, signed with X-Twilio-Signature).
//
// It answers 413 to a body over MaxBody, 403 to a missing or wrong
// signature, 400 to a signed body that is not a status callback (not form
// encoded, a parameter twice, no MessageSid or MessageStatus), 500 when the
// store or the suppression list failed (Twilio may try again; both are
// idempotent), and 200 to everything else, including a status it does not
// track and a message it does not know, which are counted and logged.
type Twilio struct {
	opts       TwilioOptions
	base       string // PublicURL without query
	validators []client.RequestValidator
}

// TwilioHandler validates opts and returns the handler.
func TwilioHandler(opts TwilioOptions) (*Twilio, error) {
	u, err := url.Parse(opts.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, invalid("TwilioOptions.PublicURL %q is not an absolute http(s) URL", opts.PublicURL)
	}
	if opts.Store == nil {
		return nil, invalid("TwilioOptions.Store is required")
	}
	t := &Twilio{opts: opts}
	for _, tok := range opts.AuthTokens {
		if tok != "" {
			t.validators = append(t.validators, client.NewRequestValidator(tok))
		}
	}
	if len(t.validators) == 0 {
		return nil, invalid("TwilioOptions.AuthTokens has no token")
	}
	u.RawQuery, u.ForceQuery, u.Fragment = "", false, ""
	t.base = u.String()
	if t.opts.MaxBody <= 0 {
		t.opts.MaxBody = DefaultMaxBody
	}
	if t.opts.Clock == nil {
		t.opts.Clock = time.Now
	}
	if t.opts.Logger == nil {
		t.opts.Logger = zap.NewNop()
	}
	return t, nil
}

// Callback results, the values of herald_delivery_receipt_callbacks_total's
// result label.
const (
	ResultRecorded  = "recorded"  // the receipt moved forward
	ResultUnchanged = "unchanged" // a repeated or late status: nothing moved
	ResultUnknown   = "unknown"   // recorded for a provider message no worker has reported (yet)
	ResultIgnored   = "ignored"   // a status this package does not track
	ResultForged    = "forged"    // missing or wrong signature (403)
	ResultMalformed = "malformed" // not a status callback (400)
	ResultTooLarge  = "too_large" // body over MaxBody (413)
	ResultError     = "error"     // the store or the suppression list failed (500)
)

var results = []string{ResultRecorded, ResultUnchanged, ResultUnknown, ResultIgnored, ResultForged, ResultMalformed, ResultTooLarge, ResultError}

func (t *Twilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, result := t.serve(r)
	t.opts.Metrics.callback(ProviderTwilio, result)
	w.WriteHeader(status)
}

func (t *Twilio) serve(r *http.Request) (int, string) {
	log := t.opts.Logger
	body, refused, why := readPost(r, t.opts.MaxBody)
	if refused != 0 {
		log.Warn("twilio receipt refused", zap.String("result", why), zap.Int64("max_body", t.opts.MaxBody))
		return refused, why
	}
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" {
		log.Warn("twilio receipt without a signature")
		return http.StatusForbidden, ResultForged
	}
	params, ok := decodeForm(r.Header.Get("Content-Type"), body)
	if !ok {
		log.Warn("twilio receipt is not a form")
		return http.StatusBadRequest, ResultMalformed
	}
	if !t.signed(r.URL.RawQuery, params, sig) {
		log.Warn("twilio receipt with a wrong signature")
		return http.StatusForbidden, ResultForged
	}
	sid := first(params, "MessageSid", "SmsSid")
	rawStatus := first(params, "MessageStatus", "SmsStatus")
	if sid == "" || rawStatus == "" {
		log.Warn("twilio receipt without MessageSid or MessageStatus")
		return http.StatusBadRequest, ResultMalformed
	}
	status, ok := twilioStatus(rawStatus)
	if !ok {
		log.Debug("twilio receipt with a status not tracked", zap.String("provider_message_id", sid), zap.String("twilio_status", rawStatus))
		return http.StatusOK, ResultIgnored
	}
	code := params["ErrorCode"]
	to := params["To"]

	ctx := r.Context()
	rc, changed, err := t.opts.Store.Record(ctx, sid, status, code, t.opts.Clock())
	if err != nil {
		log.Error("twilio receipt not stored", zap.String("provider_message_id", sid), zap.String("status", string(status)), zap.Error(err))
		return http.StatusInternalServerError, ResultError
	}
	if rc.Channel == "" {
		rc.Channel, rc.Provider = notification.SMS, ProviderTwilio
		rc = describe(rc)
	}
	// Suppression follows the callback itself, not whether it moved the
	// receipt: a retried callback whose first delivery was stored but not
	// suppressed must still suppress.
	if reason := t.suppressReason(status, code); reason != "" && to != "" {
		if err := t.opts.Suppressor.Add(ctx, string(notification.SMS), to, string(reason)); err != nil {
			log.Error("twilio receipt: address not suppressed", zap.String("provider_message_id", sid), zap.String("reason", string(reason)), zap.Error(err))
			return http.StatusInternalServerError, ResultError
		}
	}
	result := ResultUnchanged
	if changed {
		result = ResultRecorded
		t.opts.Metrics.receipt(rc)
		fields := []zap.Field{
			zap.String("notification_id", rc.NotificationID),
			zap.String("channel", string(rc.Channel)),
			zap.String("provider", rc.Provider),
			zap.String("provider_message_id", sid),
			zap.String("status", string(rc.Status)),
			zap.String("code", rc.Code),
			zap.String("detail", rc.Detail),
			zap.String("to", address.MaskPhone(to)),
		}
		if rc.Status.Final() {
			log.Info("delivery receipt", fields...)
		} else {
			log.Debug("delivery receipt", fields...)
		}
		if rc.Status.Final() && t.opts.OnOutcome != nil {
			t.opts.OnOutcome(rc)
		}
	}
	if rc.NotificationID == "" {
		log.Info("twilio receipt for a message no worker has reported (yet)", zap.String("provider_message_id", sid), zap.String("status", string(status)))
		result = ResultUnknown
	}
	return http.StatusOK, result
}

func (t *Twilio) suppressReason(s Status, code string) failure.Reason {
	if t.opts.Suppressor == nil || (s != StatusUndelivered && s != StatusFailed) {
		return ""
	}
	_, reason := DescribeTwilioCode(code)
	if reason == "" || !suppress.Feeds(string(notification.SMS), string(reason)) {
		return ""
	}
	return reason
}

// signed reports whether sig is Twilio's signature of the callback with one
// of the auth tokens: HMAC-SHA1 over the URL Twilio posted to followed by
// every parameter name and value, sorted by name, base64-encoded, checked by
// twilio-go's own RequestValidator (which also tries the URL with and
// without its default port, as Twilio's back end is inconsistent there).
func (t *Twilio) signed(rawQuery string, params map[string]string, sig string) bool {
	u := t.base
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	ok := false
	for i := range t.validators {
		// Every token is tried, so the time taken does not tell which one
		// matched.
		if t.validators[i].Validate(u, params, sig) {
			ok = true
		}
	}
	return ok
}

// decodeForm parses a form-encoded body into one value per name. A name
// given twice is refused: Twilio never sends one, and the signature
// (twilio-go's validator signs one value per name) would not cover the
// second.
func decodeForm(contentType string, body []byte) (map[string]string, bool) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, false
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, false
	}
	params := make(map[string]string, len(vals))
	for k, v := range vals {
		if len(v) != 1 {
			return nil, false
		}
		params[k] = v[0]
	}
	return params, true
}

func first(params map[string]string, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(params[n]); v != "" {
			return v
		}
	}
	return ""
}

// readPost reads a provider's POST up to max bytes; a non-zero status is
// the answer to give instead (405, 413, 400) with its result.
func readPost(r *http.Request, max int64) (body []byte, status int, result string) {
	if r.Method != http.MethodPost {
		return nil, http.StatusMethodNotAllowed, ResultMalformed
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, max))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, http.StatusRequestEntityTooLarge, ResultTooLarge
		}
		return nil, http.StatusBadRequest, ResultMalformed
	}
	return body, 0, ""
}
