// Package failure classifies errors so that the place where an error happens
// decides what becomes of the message, and everything downstream (retry
// ladder, DLQ, metrics, logs) only reads that decision.
//
// There are three classes. Retryable: the same message may succeed later
// (network, timeouts, SMTP 4xx, HTTP 429/5xx). Permanent: this message will
// never succeed as it is (SMTP 5xx, an invalid number, a template that cannot
// render). Poison: the input itself cannot be understood (undecodable event or
// notification); it goes to the DLQ and its partition keeps flowing.
//
// A Reason is a small, closed vocabulary that doubles as a metric label, so
// it must never carry per-message text: put detail in the wrapped error.
package failure

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Class says what may be done with a message whose processing failed.
type Class int

const (
	// Retryable failures may succeed if the same message is tried again.
	Retryable Class = iota
	// Permanent failures will fail again however often they are tried.
	Permanent
	// Poison marks input that cannot be decoded or validated.
	Poison
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case Poison:
		return "poison"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Reason is a low-cardinality label for why something failed.
type Reason string

// The reasons herald knows. Keep this list short: each one is a metric label
// value and must exist as a series from start-up.
const (
	ReasonDecode            Reason = "decode"             // bytes are not the expected JSON
	ReasonInvalid           Reason = "invalid"            // decoded, but fails validation
	ReasonRender            Reason = "render"             // template missing or failed to render
	ReasonInvalidAddress    Reason = "invalid_address"    // provider says the address cannot exist
	ReasonUnsubscribed      Reason = "unsubscribed"       // recipient opted out at the provider
	ReasonTokenUnregistered Reason = "token_unregistered" // push token no longer valid
	ReasonRejected          Reason = "rejected"           // provider refused this message permanently
	ReasonTooLarge          Reason = "too_large"          // bigger than a limit herald or the broker sets
	ReasonRateLimited       Reason = "rate_limited"       // provider asked us to slow down
	ReasonUnavailable       Reason = "unavailable"        // provider 5xx / SMTP 4xx
	ReasonNetwork           Reason = "network"            // connection refused, reset, DNS, TLS
	ReasonTimeout           Reason = "timeout"            // deadline exceeded talking to a dependency
	ReasonAuth              Reason = "auth"               // our credentials were refused
	ReasonExhausted         Reason = "exhausted"          // retry attempts or age used up
	ReasonDestinationDenied Reason = "destination_denied" // SMS destination outside the allowed countries or in a denied (premium) range
	ReasonOverBudget        Reason = "over_budget"        // SMS over its segment budget even with free text shortened
	ReasonUnknown           Reason = "unknown"            // unclassified error
)

// Reasons lists every reason, for pre-creating metric series.
var Reasons = []Reason{
	ReasonDecode, ReasonInvalid, ReasonRender, ReasonInvalidAddress, ReasonUnsubscribed,
	ReasonTokenUnregistered, ReasonRejected, ReasonTooLarge, ReasonRateLimited, ReasonUnavailable,
	ReasonNetwork, ReasonTimeout, ReasonAuth, ReasonExhausted, ReasonDestinationDenied,
	ReasonOverBudget, ReasonUnknown,
}

// channelReasons are reasons a channel package adds (Register): the
// webhook channel's endpoint_gone. Reasons stays the shared list.
var (
	channelMu      sync.Mutex
	channelReasons []Reason
)

// Register adds reasons a channel's sender gives its errors, so that tools
// that check a reason (herald dlq --reason) know them. It returns its first
// argument, for a package-level var.
func Register(rs ...Reason) Reason {
	channelMu.Lock()
	defer channelMu.Unlock()
	channelReasons = append(channelReasons, rs...)
	if len(rs) == 0 {
		return ""
	}
	return rs[0]
}

// Known returns every reason herald can write: Reasons, then the ones
// channel packages registered.
func Known() []Reason {
	channelMu.Lock()
	defer channelMu.Unlock()
	return append(slices.Clip(Reasons), channelReasons...)
}

// Error is an error with its class and reason attached.
type Error struct {
	Class  Class
	Reason Reason
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%s (%s)", e.Reason, e.Class)
	}
	return fmt.Sprintf("%s (%s): %v", e.Reason, e.Class, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// New classifies err. A nil err still yields an error, so that callers can
// write failure.New(Permanent, ReasonRender, nil) for a condition without a
// cause.
func New(c Class, r Reason, err error) error { return &Error{Class: c, Reason: r, Err: err} }

// Retry marks err as retryable with reason r.
func Retry(r Reason, err error) error { return New(Retryable, r, err) }

// Perm marks err as permanent with reason r.
func Perm(r Reason, err error) error { return New(Permanent, r, err) }

// Poisoned marks err as poison input with reason r.
func Poisoned(r Reason, err error) error { return New(Poison, r, err) }

// Errorf builds a classified error from a format, like fmt.Errorf (%w works).
func Errorf(c Class, r Reason, format string, args ...any) error {
	return New(c, r, fmt.Errorf(format, args...))
}

// ClassOf returns the class of err. An unclassified error is Retryable: the
// idempotency keys make a retry safe, while treating an unknown error as
// permanent would silently drop a message that might have gone out later.
func ClassOf(err error) Class {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Class
	}
	return Retryable
}

// ReasonOf returns the reason of err, or ReasonUnknown when unclassified.
func ReasonOf(err error) Reason {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return ReasonUnknown
}

// IsRetryable reports whether err may succeed on another attempt.
func IsRetryable(err error) bool { return err != nil && ClassOf(err) == Retryable }
