// Package sms delivers SMS through Twilio's Messages API with the official
// twilio-go client, and decides at the point of failure whether a message
// may be retried (docs/contracts.md §4).
//
// Twilio's error codes decide first: 21211 and 21614 (not a valid or not a
// mobile number) are permanent invalid_address, 21610 (the recipient replied
// STOP) is permanent unsubscribed — both feed suppression, which reads the
// code with ReasonCode — 21408 and 21612 (region not enabled, unreachable)
// are permanent rejected, 20429 is rate_limited and 20003 auth. Everything
// else follows the HTTP status through package httperr.
//
// Numbers are checked before Twilio is called, as the dispatcher checked
// them (package address): not E.164 is permanent invalid_address, outside
// the configured countries or in a denied premium range permanent
// destination_denied.
//
// It must never log, retry or sleep (the worker does), and its errors never
// quote Twilio's message text, which can contain the recipient's number.
//
// # Overriding Twilio's base URL
//
// twilio-go v1.31 hard-codes "https://api.twilio.com" in its generated
// ApiService (an unexported baseURL with no setter), and builds every request
// with context.Background(). Both are handled in one place: each Send runs
// the library's real CreateMessage through a client.Client whose
// http.Client transport (a per-call RoundTripper over one shared, pooled
// *http.Transport) binds the request to Send's context and, when APIURL is
// not Twilio's, rewrites the scheme and host of api.twilio.com requests to
// APIURL. TWILIO_EDGE and TWILIO_REGION are deliberately ignored: where SMS
// go is configured by Config alone.
package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	twilioapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/httperr"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// The Twilio error codes this package classifies itself.
const (
	CodeAuthenticate         = 20003 // credentials refused
	CodeTooManyRequests      = 20429
	CodeInvalidTo            = 21211 // 'To' is not a valid phone number
	CodeRegionNotEnabled     = 21408 // no permission to send to the region
	CodeUnsubscribed         = 21610 // recipient replied STOP
	CodeUnreachable          = 21612 // 'To' not reachable from this sender
	CodeNotMobile            = 21614 // 'To' is not a mobile number
	codeIllegalUsernameChars = 21222 // twilio-go's own credential checks
	codeIllegalPasswordChars = 21224
)

const twilioHost = "api.twilio.com"

// Sender sends SMS through Twilio. It is safe for concurrent use.
type Sender struct {
	cfg       Config
	creds     *client.Credentials
	transport *http.Transport
	rewrite   *url.URL // APIURL, or nil when it is Twilio's own
	validity  int      // seconds; 0 leaves Twilio's default
	policy    *address.SMSPolicy
}

var _ channels.Sender = (*Sender)(nil)

// New validates cfg and returns a Sender. It does not contact Twilio.
func New(cfg Config) (*Sender, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sms: %w", err)
	}
	s := &Sender{
		cfg:       cfg,
		creds:     client.NewCredentials(cfg.AccountSID, cfg.AuthToken),
		transport: httperr.PooledTransport(64),
		validity:  int(cfg.ValidityPeriod / time.Second),
		policy:    cfg.Policy,
	}
	if s.policy == nil {
		s.policy = address.DefaultSMSPolicy()
	}
	if u, _ := url.Parse(cfg.APIURL); u.Host != twilioHost || u.Scheme != "https" || strings.Trim(u.Path, "/") != "" {
		s.rewrite = u
	}
	return s, nil
}

// Send submits m.Text to m.To. The Receipt carries the message SID. Twilio
// accepting a message means it is queued, not delivered.
func (s *Sender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	if m.To == "" {
		return channels.Receipt{}, failure.Perm(failure.ReasonInvalidAddress, errors.New("sms: no recipient number"))
	}
	if err := s.policy.Deliverable(notification.SMS, m.To); err != nil {
		return channels.Receipt{}, fmt.Errorf("sms: %w", err)
	}
	if m.Text == "" {
		return channels.Receipt{}, failure.Perm(failure.ReasonRejected, errors.New("sms: empty body"))
	}
	if err := ctx.Err(); err != nil {
		return channels.Receipt{}, httperr.Transport(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	rt := &call{ctx: ctx, next: s.transport, rewrite: s.rewrite}
	c := &client.Client{
		Credentials: s.creds,
		HTTPClient: &http.Client{
			Transport: rt,
			// As twilio-go's default client: an answer is final.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	c.SetAccountSid(s.cfg.AccountSID)
	api := twilioapi.NewApiService(&client.RequestHandler{Client: c})

	params := &twilioapi.CreateMessageParams{}
	params.SetTo(m.To).SetBody(m.Text)
	if s.cfg.From != "" {
		params.SetFrom(s.cfg.From)
	}
	if s.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(s.cfg.MessagingServiceSID)
	}
	if s.validity > 0 {
		params.SetValidityPeriod(s.validity)
	}
	if s.cfg.StatusCallback != "" {
		params.SetStatusCallback(s.cfg.StatusCallback)
	}

	msg, err := api.CreateMessage(params)
	if err != nil {
		return channels.Receipt{}, classify(err, rt)
	}
	if msg.Sid == nil || *msg.Sid == "" {
		// Something said yes without an id: the message may be out, so it
		// is not sent again (httperr.Unparsed).
		return channels.Receipt{}, httperr.Unparsed(rt.status, rt.retryAfter, errors.New("sms: twilio accepted the message without a sid"))
	}
	return channels.Receipt{ProviderMessageID: *msg.Sid}, nil
}

// Close releases pooled connections.
func (s *Sender) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// classify turns what CreateMessage returned into a classified error.
func classify(err error, rt *call) error {
	if rest, ok := errors.AsType[*client.TwilioRestError](err); ok && (rest.Code != 0 || rt.status == 0) {
		status := rt.status
		if status == 0 {
			status = rest.Status // raised by twilio-go itself, before sending
		}
		return classifyTwilio(status, rt.retryAfter, rest)
	}
	if rt.ctx.Err() != nil || rt.status == 0 {
		if ue, ok := errors.AsType[*url.Error](err); ok && rt.called != nil {
			ue.URL = rt.called.String() // not twilio-go's api.twilio.com, when APIURL rewrote it
		}
		return httperr.Transport(err)
	}
	// Twilio (or something in front of it) answered, but not with an error
	// JSON carrying a Twilio code.
	return httperr.Unparsed(rt.status, rt.retryAfter, fmt.Errorf("sms: twilio answer: %w", err))
}

func classifyTwilio(status int, retryAfter string, rest *client.TwilioRestError) error {
	err := &apiError{rest: rest}
	switch rest.Code {
	case CodeInvalidTo, CodeNotMobile:
		return httperr.New(failure.Permanent, failure.ReasonInvalidAddress, status, retryAfter, err)
	case CodeUnsubscribed:
		return httperr.New(failure.Permanent, failure.ReasonUnsubscribed, status, retryAfter, err)
	case CodeRegionNotEnabled, CodeUnreachable:
		return httperr.New(failure.Permanent, failure.ReasonRejected, status, retryAfter, err)
	case CodeTooManyRequests:
		return httperr.New(failure.Retryable, failure.ReasonRateLimited, status, retryAfter, err)
	case CodeAuthenticate, codeIllegalUsernameChars, codeIllegalPasswordChars:
		return httperr.New(failure.Retryable, failure.ReasonAuth, status, retryAfter, err)
	}
	return httperr.Classify(status, retryAfter, err)
}

// apiError presents Twilio's error without its message text, which can quote
// the recipient's phone number; the full *client.TwilioRestError is still
// reachable with errors.As.
type apiError struct{ rest *client.TwilioRestError }

func (e *apiError) Error() string {
	if e.rest.MoreInfo == "" {
		return fmt.Sprintf("twilio error %d", e.rest.Code)
	}
	return fmt.Sprintf("twilio error %d (%s)", e.rest.Code, e.rest.MoreInfo)
}

func (e *apiError) Unwrap() error { return e.rest }

// ReasonCode returns the Twilio error code carried by err, for suppression
// logic that must tell 21610 (unsubscribed) from 21211 (invalid number).
func ReasonCode(err error) (twilioCode int, ok bool) {
	rest, ok := errors.AsType[*client.TwilioRestError](err)
	if !ok || rest.Code == 0 {
		return 0, false
	}
	return rest.Code, true
}

// call is the RoundTripper of one Send: it binds twilio-go's requests to the
// Send's context, sends api.twilio.com requests to APIURL, and remembers the
// answer's status and Retry-After, which twilio-go's error does not keep
// when the body is not Twilio's error JSON. One Send is one goroutine, so
// its fields need no lock.
type call struct {
	ctx     context.Context
	next    http.RoundTripper
	rewrite *url.URL

	status     int
	retryAfter string
	called     *url.URL // the last request's, as sent
}

func (c *call) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(c.ctx)
	if c.rewrite != nil && req.URL.Host == twilioHost {
		req.URL.Scheme = c.rewrite.Scheme
		req.URL.Host = c.rewrite.Host
		req.URL.Path = strings.TrimSuffix(c.rewrite.Path, "/") + req.URL.Path
		req.URL.RawPath = ""
		req.Host = ""
	}
	c.called = req.URL
	resp, err := c.next.RoundTrip(req)
	if resp != nil {
		c.status = resp.StatusCode
		c.retryAfter = resp.Header.Get("Retry-After")
		resp.Body = drainOnClose{resp.Body}
	}
	return resp, err
}

// drainOnClose reads what is left of a small answer before closing it, so
// the connection goes back to the pool whether or not twilio-go's decoder
// read to the end.
type drainOnClose struct{ io.ReadCloser }

func (b drainOnClose) Close() error {
	_, _ = io.CopyN(io.Discard, b.ReadCloser, 16<<10)
	return b.ReadCloser.Close()
}
