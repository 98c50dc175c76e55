// Package httperr is the one place where an HTTP provider's answer becomes a
// failure class and reason, so that every HTTP integration (Twilio, FCM, any
// future webhook) retries and drops messages by the same rules.
//
// A provider package first decides the cases its own error codes make
// clearer (a Twilio 21610 is "unsubscribed", an FCM UNREGISTERED is a dead
// token) and hands everything else to Classify, Unparsed or Transport. The
// rules, and why:
//
//   - 429 is Retryable/rate_limited: the provider asked us to slow down.
//   - 408 and 5xx are Retryable/unavailable: the provider failed, not the
//     message.
//   - 401 and 403 are Retryable/auth. They say our credentials are wrong,
//     which is our configuration problem, not the recipient's; credentials
//     get rotated and fixed, and a message must never be dropped because an
//     operator pasted the wrong token. The retry ladder's age and attempt
//     limits bound how long such messages wait.
//   - Any other 4xx is Permanent/rejected: the provider judged this message
//     and sending it again gets the same answer.
//   - An error answer whose body is not the provider's error format is
//     Retryable whatever its status (see Unparsed): it most likely came from
//     something in front of the provider — a proxy, a load balancer, a
//     misrouted URL — which says nothing about the message.
//   - No answer at all (see Transport) is Retryable: timeout or network.
//
// The returned errors carry the HTTP status and any Retry-After hint in an
// *Error inside the failure.Error, for the retry ladder to read with
// RetryAfter. This package never retries, sleeps or logs.
package httperr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gymhq/herald/failure"
)

// Error is a provider's non-success HTTP answer. It sits inside the
// failure.Error that classifies it and wraps the provider's decoded error,
// if any.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// RetryAfter is the provider's Retry-After hint; 0 when absent or not
	// understood.
	RetryAfter time.Duration
	// Err is the provider's decoded error, or nil.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.Status)
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// New classifies an HTTP answer as the caller decided, keeping its status and
// Retry-After hint. Provider packages use it for their own error codes.
func New(c failure.Class, r failure.Reason, status int, retryAfter string, cause error) error {
	ra, _ := ParseRetryAfter(retryAfter, time.Now())
	return failure.New(c, r, &Error{Status: status, RetryAfter: ra, Err: cause})
}

// Classify classifies a non-success HTTP status by the rules in the package
// comment. retryAfter is the raw Retry-After header (may be empty); cause is
// the provider's decoded error (may be nil). A status that is not an error
// (1xx–3xx) answering a request that expected success is treated as the
// provider being unavailable.
func Classify(status int, retryAfter string, cause error) error {
	c, r := classOf(status)
	return New(c, r, status, retryAfter, cause)
}

func classOf(status int) (failure.Class, failure.Reason) {
	switch {
	case status == http.StatusTooManyRequests:
		return failure.Retryable, failure.ReasonRateLimited
	case status == http.StatusRequestTimeout, status >= 500:
		return failure.Retryable, failure.ReasonUnavailable
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return failure.Retryable, failure.ReasonAuth
	case status >= 400:
		return failure.Permanent, failure.ReasonRejected
	}
	return failure.Retryable, failure.ReasonUnavailable
}

// Unparsed classifies an error answer whose body the caller could not decode
// as the provider's error format. It is Classify, except that an answer
// Classify would call permanent becomes Retryable/unavailable: without the
// provider's own words there is no evidence the message is at fault.
//
// A success (2xx) the caller cannot read is the other way round: the
// provider, or whatever answered in its place, said yes, and the message
// may be out. Sent again it could arrive twice, and a proxy answering
// every request with its own page would do that to every message, once per
// attempt of the retry ladder. So it is Permanent/rejected: dead-lettered
// at once, for an operator to check the provider's URL and what stands in
// front of it, then replay.
func Unparsed(status int, retryAfter string, cause error) error {
	if status >= 200 && status < 300 {
		return New(failure.Permanent, failure.ReasonRejected, status, retryAfter,
			fmt.Errorf("%w; a success answer herald cannot read, so not sent again (the message may be out): check the provider's URL and any proxy in front of it, then replay", cause))
	}
	c, r := classOf(status)
	if c == failure.Permanent {
		c, r = failure.Retryable, failure.ReasonUnavailable
	}
	return New(c, r, status, retryAfter, cause)
}

// Transport classifies an error from sending a request that got no HTTP
// answer: a deadline (the context's, the client's or the socket's) is
// Retryable/timeout, anything else Retryable/network. An error that is
// already classified is returned unchanged; nil stays nil.
//
// Whether the provider acted on a request that timed out is unknown; the
// retry may duplicate it, which is the admitted duplicate window of
// docs/contracts.md §3.
func Transport(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*failure.Error](err); ok {
		return err
	}
	if isTimeout(err) {
		return failure.Retry(failure.ReasonTimeout, err)
	}
	return failure.Retry(failure.ReasonNetwork, err)
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// RetryAfter returns the provider's Retry-After hint carried by err, if any.
func RetryAfter(err error) (time.Duration, bool) {
	e, ok := errors.AsType[*Error](err)
	if !ok || e.RetryAfter <= 0 {
		return 0, false
	}
	return e.RetryAfter, true
}

// Status returns the HTTP status carried by err, if it came from an answer.
func Status(err error) (int, bool) {
	e, ok := errors.AsType[*Error](err)
	if !ok {
		return 0, false
	}
	return e.Status, true
}

// ParseRetryAfter reads a Retry-After header value (RFC 9110 §10.2.3): either
// delay-seconds or an HTTP-date, taken relative to now. A date in the past is
// a zero delay; an empty or malformed value is reported as not ok.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 || secs > int64(time.Duration(1<<63-1)/time.Second) {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// PooledTransport is the HTTP transport every provider integration uses: a
// pool sized for many concurrent sends to one host, kept alive between them,
// so a send costs a request rather than a TCP and TLS handshake.
func PooledTransport(perHost int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 2 * perHost
	t.MaxIdleConnsPerHost = perHost
	t.IdleConnTimeout = 90 * time.Second
	return t
}
