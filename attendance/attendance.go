// Package attendance keeps, per gym class, the set of confirmed bookings,
// so that herald can tell when a class fills up ("busy") without trusting
// the booked number that events carry.
//
// The set is computed from the booking events themselves: a confirmation
// (or waitlist promotion) adds its booking id, a cancellation removes it and
// leaves a tombstone, a class cancellation closes the class. Every operation
// is idempotent and the tombstones make an add and a remove of one booking
// commute, so duplicates, a replay of the whole topic and out-of-order
// redelivery all end in the same set. The booked count in a payload is a
// snapshot taken by the producer at some moment and says nothing about the
// order in which herald sees it, which is why it is never used.
//
// A class is "busy" once its count reaches Need (a share of its capacity).
// The store records each upward crossing exactly once, and re-arms only
// after the count falls below Need again, so a class that hovers around the
// threshold does not announce itself with every booking.
//
// Publishing follows the outbox pattern. The store's update and the
// caller's Kafka publish cannot be one transaction, so the store remembers
// what has not been published yet (the pending busy crossing and the last
// version marked published) and reports it with every result, including
// the result of a redelivered operation that changed nothing. A caller that
// crashed between the update and the publish therefore publishes on the
// redelivery; it uses ids derived from the class id and the crossing number
// or version, so that downstream dedupes a publish that did happen, and
// then calls MarkBusyPublished or MarkPublished.
//
// Two implementations share one contract: Redis, for the fleet, and
// Memory, for the single-process dev mode and tests.
package attendance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/gymhq/herald/failure"
)

// Kind is what an operation does to a class.
type Kind int

// The kinds of operation. The zero Kind is invalid, so that an Op whose
// Kind was never set is refused rather than taken for an Add.
const (
	// Add confirms a booking (gym.booking.confirmed,
	// gym.waitlist.promoted).
	Add Kind = iota + 1
	// Remove cancels a booking (gym.booking.cancelled) and tombstones its
	// id, so a late redelivered confirmation cannot bring it back.
	Remove
	// Close cancels the class (gym.class.cancelled). It is final: later
	// adds and removes change nothing.
	Close
)

// String returns "add", "remove" or "close".
func (k Kind) String() string {
	switch k {
	case Add:
		return "add"
	case Remove:
		return "remove"
	case Close:
		return "close"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MaxIDLen bounds class and booking ids, in bytes: they become Redis keys
// and set members, and an id this long is a producer bug, not a booking.
const MaxIDLen = 256

// Op is one operation on one class, derived from one event.
type Op struct {
	Kind Kind
	// ClassID names the class; required.
	ClassID string
	// BookingID names the booking; required for Add and Remove, ignored
	// for Close.
	BookingID string
	// Capacity is the class's capacity as the event states it. A positive
	// value replaces the stored capacity (the latest operation wins); zero
	// keeps it. It is informational: the busy threshold is Need.
	Capacity int
	// Need is the count at which the class is busy, normally
	// Need(threshold, Capacity) computed by the caller; 0 disables busy
	// detection for this operation.
	Need int
	// TTL is how long the class's state lives after this operation. Every
	// operation sets it afresh, so a class is forgotten TTL after its last
	// event; it should comfortably outlast the class and Kafka's retention,
	// or a replay after expiry would count the class again from nothing.
	// It is rounded up to a whole millisecond.
	TTL time.Duration
}

// State is a class's state, as left by an operation or read by Get.
type State struct {
	ClassID string
	// Confirmed is the number of confirmed bookings.
	Confirmed int
	// Capacity is the latest positive capacity seen, 0 if none.
	Capacity int
	// Closed is true once the class has been cancelled.
	Closed bool
	// Version counts the changes: operations that changed the set of
	// bookings or closed the class.
	Version int64
	// Crossings counts the busy crossings so far; the n-th crossing is
	// crossing number n.
	Crossings int64
	// Changed is true when this operation was a change (always false from
	// Get).
	Changed bool
	// PendingBusy is the number of the crossing awaiting publication, 0
	// for none. Only the latest crossing is kept: if a second crossing
	// happens before the first was marked published, the first is not
	// reported any more, since "the class is busy" is only news once.
	PendingBusy int64
	// Unpublished is true when Version is above the last version marked
	// published.
	Unpublished bool
}

// Store keeps the classes' booking sets. Implementations are safe for
// concurrent use, and each operation is atomic per class.
type Store interface {
	// Apply applies op and returns the class's state after it. An invalid
	// op returns an error wrapping ErrInvalid, classified permanent, and
	// touches nothing.
	Apply(ctx context.Context, op Op) (State, error)
	// Get returns the class's state; for a class it does not know (never
	// seen, or expired) the zero State with ClassID set.
	Get(ctx context.Context, classID string) (State, error)
	// MarkBusyPublished records that crossing number crossing has been
	// published: the pending crossing is cleared if it is that one. A
	// stale number (an older crossing) clears nothing.
	MarkBusyPublished(ctx context.Context, classID string, crossing int64) error
	// MarkPublished records that the class's state at version has been
	// published: the last published version rises to version if that is
	// higher, but never above the class's current version, so a wrong or
	// stale number cannot hide changes that have not happened yet. Marking
	// an unknown class does nothing.
	MarkPublished(ctx context.Context, classID string, version int64) error
}

// ErrInvalid is wrapped by the errors for invalid arguments.
var ErrInvalid = errors.New("attendance: invalid argument")

// invalid is classified permanent: retrying with the same arguments cannot
// succeed.
func invalid(format string, args ...any) error {
	return failure.Perm(failure.ReasonInvalid, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
}

// unavailable classifies a store error as retryable: the operation is
// idempotent, so trying it again is always safe.
func unavailable(what, classID string, err error) error {
	return failure.Retry(failure.ReasonUnavailable, fmt.Errorf("attendance: %s class %q: %w", what, classID, err))
}

// checkClassID validates a class id.
func checkClassID(id string) error {
	if id == "" {
		return invalid("empty class id")
	}
	if len(id) > MaxIDLen {
		return invalid("class id of %d bytes (at most %d)", len(id), MaxIDLen)
	}
	return nil
}

// validate checks op before anything is touched.
func validate(op Op) error {
	if op.Kind < Add || op.Kind > Close {
		return invalid("unknown kind %v", op.Kind)
	}
	if err := checkClassID(op.ClassID); err != nil {
		return err
	}
	if op.Kind != Close {
		if op.BookingID == "" {
			return invalid("%v without a booking id", op.Kind)
		}
		if len(op.BookingID) > MaxIDLen {
			return invalid("booking id of %d bytes (at most %d)", len(op.BookingID), MaxIDLen)
		}
	}
	if op.Capacity < 0 {
		return invalid("negative capacity %d", op.Capacity)
	}
	if op.Need < 0 {
		return invalid("negative need %d", op.Need)
	}
	if op.TTL <= 0 {
		return invalid("ttl %v (must be positive)", op.TTL)
	}
	return nil
}

// ttlMillis is op.TTL rounded up to whole milliseconds, the unit of
// PEXPIRE; rounding down could turn a tiny TTL into 0, which deletes.
func ttlMillis(ttl time.Duration) int64 {
	return int64((ttl + time.Millisecond - 1) / time.Millisecond)
}

// Need returns the busy threshold count for a class: ceil(threshold ×
// capacity) for threshold in (0, 1] and capacity > 0, else 0 (busy
// detection off).
//
// The product is computed exactly, on the shortest decimal that denotes
// threshold (the number as it was written in the configuration), not in
// floating point: 0.1 × 30 is 3.0000000000000004 in float64, whose ceiling
// would be 4.
func Need(threshold float64, capacity int) int {
	if capacity <= 0 || math.IsNaN(threshold) || threshold <= 0 || threshold > 1 {
		return 0
	}
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(threshold, 'g', -1, 64))
	if !ok {
		return 0 // unreachable: FormatFloat of a finite float parses
	}
	// ceil(a/b) = (a + b - 1) / b for a ≥ 0, b > 0.
	a := new(big.Int).Mul(r.Num(), big.NewInt(int64(capacity)))
	b := r.Denom()
	a.Add(a, b)
	a.Sub(a, big.NewInt(1))
	a.Quo(a, b)
	return int(a.Int64()) // ≤ capacity, since threshold ≤ 1
}
