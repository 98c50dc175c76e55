package failure

import (
	"errors"
	"fmt"
)

// ErrPaused marks a send that was not attempted because its channel is
// paused: the provider's circuit breaker is open, or a guard in front of the
// provider (the fleet-wide rate limiter) could not be consulted. Such a
// message has no outcome yet. It is neither a failed attempt nor a reason to
// move it down the retry ladder: the worker gives its claim back and lets
// the runtime hold the record until the channel resumes.
var ErrPaused = errors.New("channel paused")

// Paused wraps err as a pause: retryable with reason r, and recognisable
// with IsPaused.
func Paused(r Reason, err error) error {
	return Retry(r, fmt.Errorf("%w: %w", ErrPaused, err))
}

// IsPaused reports whether err means the send was held back, not tried.
func IsPaused(err error) bool { return errors.Is(err, ErrPaused) }

// ErrUnsent marks a send that was not attempted because its own endpoint
// is known to be down (its circuit breaker is open) while its channel
// still serves others: unlike a pause, the message takes its step on the
// retry ladder, at once, without the worker's quick tries in process.
var ErrUnsent = errors.New("not sent: endpoint known to be down")

// Unsent wraps err as such a refusal: retryable with reason r, and
// recognisable with IsUnsent.
func Unsent(r Reason, err error) error {
	return Retry(r, fmt.Errorf("%w: %w", ErrUnsent, err))
}

// IsUnsent reports whether err is a refusal Unsent made.
func IsUnsent(err error) bool { return errors.Is(err, ErrUnsent) }
