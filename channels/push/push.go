// Package push delivers push notifications through Firebase Cloud
// Messaging's HTTP v1 API — plain net/http and golang.org/x/oauth2, no
// Firebase SDK — and decides at the point of failure whether a message may
// be retried (docs/contracts.md §4).
//
// Authentication is the OAuth 2.0 JWT-bearer flow of a Google service
// account: an RS256 assertion signed with the key file's private key is
// exchanged at the key file's token_uri for an access token, which is cached
// and shared by every Send until it nears expiry.
//
// FCM's error codes decide first: UNREGISTERED (the app is gone; the token
// must be removed, see IsUnregistered) is permanent token_unregistered, an
// INVALID_ARGUMENT about the token is permanent invalid_address, any other
// INVALID_ARGUMENT and SENDER_ID_MISMATCH are permanent rejected,
// QUOTA_EXCEEDED is rate_limited (with FCM's Retry-After), UNAVAILABLE and
// INTERNAL are unavailable, THIRD_PARTY_AUTH_ERROR (APNs or Web Push
// refused our credentials) is auth. Everything else follows the HTTP status
// through package httperr.
//
// It must never log, retry or sleep (the worker does), and never put
// message content in its errors.
package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/httperr"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// FCM error codes (google.firebase.fcm.v1.FcmError.errorCode).
const (
	CodeUnregistered        = "UNREGISTERED"
	CodeInvalidArgument     = "INVALID_ARGUMENT"
	CodeSenderIDMismatch    = "SENDER_ID_MISMATCH"
	CodeQuotaExceeded       = "QUOTA_EXCEEDED"
	CodeUnavailable         = "UNAVAILABLE"
	CodeInternal            = "INTERNAL"
	CodeThirdPartyAuthError = "THIRD_PARTY_AUTH_ERROR"
)

const (
	fcmErrorType   = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	badRequestType = "type.googleapis.com/google.rpc.BadRequest"
	maxAnswer      = 1 << 20
)

// Sender sends push notifications through FCM. It is safe for concurrent
// use.
type Sender struct {
	url       string
	timeout   time.Duration
	transport *http.Transport
	client    *http.Client
	tokens    *tokens
}

var _ channels.Sender = (*Sender)(nil)

// New validates cfg, reads the service-account credentials and returns a
// Sender. It does not contact Google: the first Send fetches a token.
func New(cfg Config) (*Sender, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	transport := httperr.PooledTransport(128)
	var toks *tokens
	if cfg.TokenSource != nil {
		// The caller's source cannot be renewed, only cached.
		toks = newTokens(oauth2.ReuseTokenSource(nil, cfg.TokenSource), nil)
	} else {
		creds, field := cfg.CredentialsJSON, "CredentialsJSON"
		if cfg.CredentialsFile != "" {
			b, err := os.ReadFile(cfg.CredentialsFile)
			if err != nil {
				return nil, fmt.Errorf("push: CredentialsFile: %w", err)
			}
			creds, field = b, "CredentialsFile"
		}
		jc, err := jwtConfigFromJSON(creds, Scope)
		if err != nil {
			return nil, fmt.Errorf("push: %s is not a service-account key: %w", field, err)
		}
		ctx := tokenClientContext(transport, cfg)
		fresh := func() oauth2.TokenSource { return jc.TokenSource(ctx) }
		toks = newTokens(fresh(), fresh)
	}
	s := &Sender{
		url:       strings.TrimSuffix(cfg.Endpoint, "/") + "/v1/projects/" + url.PathEscape(cfg.ProjectID) + "/messages:send",
		timeout:   cfg.Timeout,
		transport: transport,
		tokens:    toks,
	}
	s.client = &http.Client{
		Transport: &oauth2.Transport{Source: s.tokens, Base: transport},
		// An answer is final; FCM does not redirect sends.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

// Send delivers m to the device token m.To: m.Title and m.Text as the
// notification, m.Data as the data payload, m.Priority as Android and APNs
// priority. The Receipt carries FCM's message name
// ("projects/…/messages/…").
func (s *Sender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	if m.To == "" {
		return channels.Receipt{}, failure.Perm(failure.ReasonInvalidAddress, errors.New("push: no device token"))
	}
	// The dispatcher refused malformed tokens already (package address);
	// a hand-made or replayed notification is held to the same rule.
	if err := address.Check(notification.Push, m.To); err != nil {
		return channels.Receipt{}, fmt.Errorf("push: %w", err)
	}
	body, err := json.Marshal(sendRequest{Message: newMessage(m)})
	if err != nil {
		return channels.Receipt{}, failure.Perm(failure.ReasonRejected, fmt.Errorf("push: encode: %w", err))
	}
	if err := ctx.Err(); err != nil {
		return channels.Receipt{}, httperr.Transport(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return channels.Receipt{}, failure.Retry(failure.ReasonUnknown, err)
	}
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")

	resp, err := s.client.Do(req)
	if err != nil {
		return channels.Receipt{}, tokenOrTransport(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return channels.Receipt{}, httperr.Transport(fmt.Errorf("push: reading FCM's answer (HTTP %d): %w", resp.StatusCode, err))
	}
	retryAfter := resp.Header.Get("Retry-After")
	if resp.StatusCode == http.StatusOK {
		var ok struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(answer, &ok) != nil || ok.Name == "" {
			// Something said yes in a way we cannot read: the message may
			// be out, so it is not sent again (httperr.Unparsed).
			return channels.Receipt{}, httperr.Unparsed(resp.StatusCode, retryAfter, errors.New("push: FCM answered 200 without a message name"))
		}
		return channels.Receipt{ProviderMessageID: ok.Name}, nil
	}
	fe, err := answerError(resp.StatusCode, retryAfter, answer)
	if fe != nil && resp.StatusCode == http.StatusUnauthorized && fe.ErrorCode != CodeThirdPartyAuthError {
		// Our access token was refused before its expiry: fetch a new one
		// for the next attempt.
		s.tokens.refused(bearer(resp.Request))
	}
	return channels.Receipt{}, err
}

// answerError classifies FCM's answer to a send that did not succeed. An
// answer that is not Google's error JSON (a proxy's HTML page, say) is
// retryable: it says nothing about the message. fe is the parsed error,
// when there was one.
func answerError(status int, retryAfter string, answer []byte) (fe *Error, err error) {
	fe, perr := parseError(answer)
	if perr != nil {
		return nil, httperr.Unparsed(status, retryAfter, fmt.Errorf("push: FCM error answer: %w", perr))
	}
	return fe, classify(status, retryAfter, fe)
}

// Close releases pooled connections.
func (s *Sender) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// sendRequest is FCM v1's request body.
type sendRequest struct {
	Message fcmMessage `json:"message"`
}

type fcmMessage struct {
	Token        string            `json:"token"`
	Notification *fcmNotification  `json:"notification,omitempty"`
	Data         map[string]string `json:"data,omitempty"`
	Android      androidConfig     `json:"android"`
	APNS         apnsConfig        `json:"apns"`
}

type fcmNotification struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

type androidConfig struct {
	Priority string `json:"priority"`
}

type apnsConfig struct {
	Headers map[string]string `json:"headers"`
}

// newMessage maps herald's priority to both platforms: high is Android
// HIGH (wakes the device from Doze) and APNs 10 (deliver now); anything
// else is NORMAL and 5 (deliver when power allows), which keeps waitlist
// promotions fast without spending the app's high-priority budget on
// reminders.
func newMessage(m *channels.Message) fcmMessage {
	android, apns := "NORMAL", "5"
	if m.Priority == notification.High {
		android, apns = "HIGH", "10"
	}
	msg := fcmMessage{
		Token:   m.To,
		Data:    m.Data,
		Android: androidConfig{Priority: android},
		APNS:    apnsConfig{Headers: map[string]string{"apns-priority": apns}},
	}
	if m.Title != "" || m.Text != "" {
		msg.Notification = &fcmNotification{Title: m.Title, Body: m.Text}
	}
	return msg
}

// Error is FCM's error answer.
type Error struct {
	// Status is Google's canonical status, e.g. "NOT_FOUND".
	Status string
	// ErrorCode is FCM's own code from the FcmError detail, e.g.
	// "UNREGISTERED"; empty when FCM sent none.
	ErrorCode string
	// Message is FCM's explanation.
	Message string
	// Fields lists the request fields FCM's BadRequest detail blames.
	Fields []string
}

func (e *Error) Error() string {
	code := e.ErrorCode
	if code == "" {
		code = e.Status
	}
	return fmt.Sprintf("fcm %s: %s", code, e.Message)
}

// aboutToken reports whether an invalid-argument error blames the
// registration token rather than the payload.
func (e *Error) aboutToken() bool {
	for _, f := range e.Fields {
		if f == "message.token" {
			return true
		}
	}
	return strings.Contains(strings.ToLower(e.Message), "registration token")
}

// googleError is Google's error JSON.
type googleError struct {
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

func parseError(b []byte) (*Error, error) {
	var g googleError
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, err
	}
	if g.Error == nil || g.Error.Status == "" && g.Error.Code == 0 {
		return nil, errors.New("not Google's error format")
	}
	e := &Error{Status: g.Error.Status, Message: g.Error.Message}
	for _, d := range g.Error.Details {
		switch d.Type {
		case fcmErrorType:
			e.ErrorCode = d.ErrorCode
		case badRequestType:
			for _, v := range d.FieldViolations {
				e.Fields = append(e.Fields, v.Field)
			}
		}
	}
	return e, nil
}

func classify(status int, retryAfter string, e *Error) error {
	switch e.ErrorCode {
	case CodeUnregistered:
		return httperr.New(failure.Permanent, failure.ReasonTokenUnregistered, status, retryAfter, e)
	case CodeSenderIDMismatch:
		return httperr.New(failure.Permanent, failure.ReasonRejected, status, retryAfter, e)
	case CodeQuotaExceeded:
		return httperr.New(failure.Retryable, failure.ReasonRateLimited, status, retryAfter, e)
	case CodeUnavailable, CodeInternal:
		return httperr.New(failure.Retryable, failure.ReasonUnavailable, status, retryAfter, e)
	case CodeThirdPartyAuthError:
		return httperr.New(failure.Retryable, failure.ReasonAuth, status, retryAfter, e)
	}
	if (e.ErrorCode == CodeInvalidArgument || status == http.StatusBadRequest) && e.aboutToken() {
		return httperr.New(failure.Permanent, failure.ReasonInvalidAddress, status, retryAfter, e)
	}
	return httperr.Classify(status, retryAfter, e)
}

// tokenOrTransport classifies a failed request: the token endpoint refusing
// our assertion is our credentials' problem (auth, retryable), its 429/5xx
// are its own unavailability, anything else is the network.
func tokenOrTransport(err error) error {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.Response != nil {
		cause := fmt.Errorf("push: token endpoint: %w", re)
		switch st := re.Response.StatusCode; {
		case st == http.StatusTooManyRequests, st == http.StatusRequestTimeout, st >= 500:
			return httperr.Classify(st, re.Response.Header.Get("Retry-After"), cause)
		default:
			return httperr.New(failure.Retryable, failure.ReasonAuth, st, "", cause)
		}
	}
	return httperr.Transport(err)
}

func bearer(r *http.Request) string {
	if r == nil {
		return ""
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return tok
}

// IsUnregistered reports whether FCM said the device token is no longer
// registered (the app was uninstalled or the token expired), so the token
// must be removed from the member's profile.
func IsUnregistered(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.ErrorCode == CodeUnregistered
}
