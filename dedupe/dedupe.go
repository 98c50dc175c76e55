// Package dedupe is herald's idempotency store: it decides, for each
// notification id, whether a worker may send it now, and remembers what
// became of it, so that reprocessing an event (after a crash, a rebalance, a
// replay) never delivers the same message twice.
//
// A key has three states (docs/contracts.md §3). In flight: one owner holds a short
// lease and may call the provider. Sent: the provider accepted the message;
// kept for the retention window with the provider's message id. Failed: the
// message failed permanently; kept for the retention window with a reason.
// No key means nobody has tried yet, or a lease ran out or was released.
//
// The contract a worker follows is: Claim; send only if the claim was
// Acquired; then MarkSent (provider accepted), MarkFailed (permanent failure)
// or Release (retryable failure). A claim that finds the key in flight
// elsewhere must be retried later, never dropped: the other owner may fail.
//
// This package must never:
//   - mark a key sent before the provider has accepted the message: a sent key
//     suppresses every later attempt, so a premature one loses the message;
//   - drop a claim silently: every Claim returns either a decision or an
//     error, and every error is classified with package failure as retryable
//     (the store being unreachable means "do not send yet", never "send
//     unguarded" and never "give up");
//   - downgrade a sent key: once sent, MarkFailed, Release and Claim leave it
//     as it is.
//
// The one admitted duplicate window is a worker that dies (or loses its
// lease) after the provider accepted a message and before MarkSent. When the
// lease was lost rather than the worker, the second MarkSent finds the key
// already sent by another owner; implementations count those (DuplicateSends)
// so the window is measured, not hidden.
//
// Two implementations: Redis for production (atomic Lua transitions, calls
// coalesced into pipelines) and Memory for `herald dev` and unit tests.
//
// The package also owns how herald reaches Redis, for every user of it:
// Connect makes the one client (a single server, a Redis Cluster, or a
// master behind Sentinel) and Checker refuses a Redis herald cannot keep
// these promises on (a deployment other than the client's mode, an evicting
// maxmemory-policy) and reports one that cannot take writes. Every script
// takes exactly one key, so it runs on any cluster node that owns it.
package dedupe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/rpipe"
)

// State is the state of a notification's idempotency key.
type State string

const (
	// StateNone means there is no key: nobody holds or has finished the id.
	StateNone State = ""
	// StateInFlight means an owner holds the send lease.
	StateInFlight State = "in_flight"
	// StateSent means the provider accepted the message.
	StateSent State = "sent"
	// StateFailed means the message failed permanently.
	StateFailed State = "failed"
)

// Claim is the answer to Store.Claim and Store.Get.
type Claim struct {
	// Acquired reports that the caller now holds the lease and may send.
	// When Acquired, State is StateInFlight, Owner is the caller and
	// LeaseLeft is the lease just granted.
	Acquired bool
	// State is the state found when not acquired: StateSent and StateFailed
	// mean the notification is finished (acknowledge it without sending);
	// StateInFlight means another owner holds it (retry later, never drop).
	State State
	// Owner is the owner of the key: the lease holder when in flight, the
	// owner that recorded the outcome when sent or failed.
	Owner string
	// ProviderMessageID is the provider's id for the message, when sent.
	ProviderMessageID string
	// Reason is the permanent failure's reason, when failed.
	Reason string
	// LeaseLeft is how long until the holder's lease expires, when in
	// flight. Retrying a claim after LeaseLeft is the earliest it can succeed
	// unless the holder releases it.
	LeaseLeft time.Duration
}

// Store is an idempotency store.
//
// All methods are safe for concurrent use. Every error is classified with
// package failure: invalid arguments are Permanent with ReasonInvalid
// (a programming error); everything else (store unreachable, timeouts, ctx
// done, store closed) is Retryable, so a worker that cannot reach the store
// does not send and tries again later. Close stops the store; calls after it
// fail with ErrClosed.
type Store interface {
	// Claim takes the send lease for id for owner. It is re-entrant for the
	// same owner (the lease is extended to lease from now), so an owner must
	// name one holder of work (for example pod and worker goroutine), never
	// something two concurrent attempts share. A key that is sent or failed
	// is never claimed again, not even by its owner. Leases are counted in
	// whole milliseconds; a lease under 1ms is invalid.
	Claim(ctx context.Context, id, owner string, lease time.Duration) (Claim, error)
	// MarkSent records that the provider accepted the message. It succeeds
	// even if the lease expired (the message did go out); it never
	// downgrades a key already sent, and keeps the first provider id. It is
	// idempotent, so after an error the caller retries MarkSent; an error
	// never means the message may be sent again.
	MarkSent(ctx context.Context, id, owner, providerMessageID string) error
	// MarkFailed records a permanent failure (unless already sent).
	MarkFailed(ctx context.Context, id, owner, reason string) error
	// Release gives the lease back after a retryable failure, only if owner
	// still holds it; otherwise it does nothing.
	Release(ctx context.Context, id, owner string) error
	// Get reads the state without changing it (for tooling and tests).
	// Acquired is always false.
	Get(ctx context.Context, id string) (Claim, error)
	// Close stops the store.
	Close() error
}

// Defaults for Options.
const (
	DefaultPrefix    = "herald:idem:"
	DefaultRetention = 7 * 24 * time.Hour
	DefaultBatchMax  = 256
)

// Options configures a Store. The zero value means every default.
type Options struct {
	// Prefix is prepended to every notification id to make its Redis key, so
	// the keys can share a Redis with suppression lists and rate limits.
	// Default DefaultPrefix. Memory ignores it.
	Prefix string
	// Retention is how long a sent or failed key is kept. A duplicate that
	// arrives after it (a very late replay) is sent again, so it must exceed
	// the longest replay and retry horizon. Default DefaultRetention (7 days).
	Retention time.Duration
	// Clock is the time source. Memory uses it for leases and retention;
	// Redis expires keys on the server's clock and uses Clock only to stamp
	// the time of each transition on the key (field "t"). Default time.Now.
	Clock func() time.Time
	// BatchMax is the most commands Redis sends in one pipeline. Larger
	// batches mean fewer round trips under load and a longer wait for the
	// last caller in a batch. Default DefaultBatchMax. Memory ignores it,
	// and so does Redis with Pipes.
	BatchMax int
	// Pipes, when set, are the pipelines Redis sends its scripts in,
	// shared with the suppression list's lookups on the same client (see
	// internal/rpipe); their maker closes them. Memory ignores it.
	Pipes *rpipe.Pipes
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.BatchMax <= 0 {
		o.BatchMax = DefaultBatchMax
	}
	return o
}

// ErrClosed is returned (classified Retryable, ReasonUnavailable) by calls
// on a closed store.
var ErrClosed = errors.New("dedupe: store is closed")

var errClosed = failure.Retry(failure.ReasonUnavailable, ErrClosed)

func checkID(op, id string) error {
	if id == "" {
		return failure.Errorf(failure.Permanent, failure.ReasonInvalid, "dedupe: %s: empty notification id", op)
	}
	return nil
}

func checkOwner(op, id, owner string) error {
	if err := checkID(op, id); err != nil {
		return err
	}
	if owner == "" {
		return failure.Errorf(failure.Permanent, failure.ReasonInvalid, "dedupe: %s %s: empty owner", op, id)
	}
	return nil
}

func checkLease(id string, lease time.Duration) error {
	if lease < time.Millisecond {
		return failure.Errorf(failure.Permanent, failure.ReasonInvalid, "dedupe: claim %s: lease %v is shorter than 1ms", id, lease)
	}
	return nil
}

// ctxErr classifies the end of the caller's context. A deadline is a
// timeout; a cancellation (shutdown) is retryable too, so the message is
// picked up again rather than given up.
func ctxErr(op, id string, err error) error {
	return failure.Retry(failure.ReasonTimeout, fmt.Errorf("dedupe: %s %s: %w", op, id, err))
}
