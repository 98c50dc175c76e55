package schedule

import (
	"context"
	"time"
)

// Entry is one scheduled record in the index: a notification waiting for
// its due time, under its cancel keys.
type Entry struct {
	// ID is the notification id: one entry per id.
	ID string
	// Due is when it fires (millisecond precision in Redis).
	Due time.Time
	// Keys are its cancel keys (Record.Keys); a Cancel of any withdraws it.
	Keys []string
	// Record is the encoded schedule record (Encode), re-published when due.
	Record []byte
	// EventTime is the time of the event that scheduled it (millisecond
	// precision in Redis); zero when unknown. A cancellation withdraws it
	// only if the cancelling event is not older (Cancellation).
	EventTime time.Time
	// Refresh is when a new copy of Record must be written to the schedule
	// topic, because the topic drops the copy this entry was read from
	// before Due (the scheduler works it out from the copy's write time
	// and the retention); zero when that copy lasts until Due. The index
	// keeps one refresh time per entry, whatever order copies arrive in:
	// none once any copy lasts, else the latest (Add, Stale).
	Refresh time.Time
}

// A Cancellation tombstones Key on behalf of an event at At: it withdraws
// what events at or before At scheduled under Key, whether indexed before
// or after it, and nothing a later event scheduled (a class the gym
// reinstated, a booking made again under the same id). A zero At, or an
// entry whose EventTime is zero, cannot be ordered: the entry is
// withdrawn, as every entry under a key was before events were ordered.
type Cancellation struct {
	Key string
	At  time.Time
}

// Index is the scheduler's working state, rebuilt from the schedule topic
// (Kafka is the source of truth; docs/scheduling.md). Every operation is
// atomic and idempotent, and they commute: applying the topic's records in
// any order, any number of times, ends in the same index. That is what
// lets a rebuild after Redis lost its contents run beside the live
// consumer.
//
// An entry is pending (waiting for Due), leased (handed to a firer by Due,
// until Done or the lease ends), or gone: done (fired, remembered for a
// while so a re-Add is ignored) or cancelled (one of its keys tombstoned
// by a cancellation not older than it, remembered likewise). A key's
// tombstone covers the latest of its cancellations' times, so it too
// ends the same in any order.
type Index interface {
	// Add indexes each entry unless its id is done or pending/leased
	// already, or one of its keys has a tombstone that covers it: such an
	// entry is not indexed and its id is returned in cancelled (the caller
	// reports the outcome). An entry pending or leased already is left as
	// it is but for its refresh time: another copy of its record that
	// lasts until Due clears it, one that does not raises it to its own if
	// later. An entry indexed with a zero Refresh never gets one, so the
	// refresh time ends the same in any order of the copies. Add trims
	// expired tombstones and done marks.
	Add(ctx context.Context, entries []Entry) (cancelled []string, err error)
	// Cancel tombstones each cancellation's key for ttl and removes every
	// pending entry it covers, returning each once, the first time only,
	// with its ID and Record (for the caller's outcome line). A leased
	// entry is not removed: it was due before the cancellation arrived and
	// may already be published.
	Cancel(ctx context.Context, cs []Cancellation, ttl time.Duration) (cancelled []Entry, err error)
	// Due leases up to limit entries whose Due is at or before now and that
	// are pending, or leased with a lease ended before now (a firer that
	// died), for lease; in due order.
	Due(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Entry, error)
	// Stale leases, for lease, up to limit pending or leased entries whose
	// refresh time is at or before now, by refresh time, and returns them
	// (the caller writes a new copy of each record to the topic; the copy's
	// Add sets the next refresh time or clears it). A lease only delays the
	// next Stale of an entry: it does not stop Due firing it.
	Stale(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Entry, error)
	// Done removes ids (pending or leased) and remembers them as done for
	// ttl, so a later Add of the same id (a rebuild, a re-published
	// schedule record) is ignored.
	Done(ctx context.Context, ids []string, ttl time.Duration) error
	// Missing returns which of partitions 0..n-1 have no ready mark: the
	// index may lack their records (a new deployment, or Redis lost its
	// contents) and must be rebuilt from the topic before anything fires.
	Missing(ctx context.Context, n int) ([]int, error)
	// MarkReady sets partition's ready mark.
	MarkReady(ctx context.Context, partition int) error
	// Lock takes partition's rebuild lock for owner for ttl (true when
	// taken or already owner's); Unlock gives it back if owner holds it.
	Lock(ctx context.Context, partition int, owner string, ttl time.Duration) (bool, error)
	Unlock(ctx context.Context, partition int, owner string) error
	// Pending is the number of pending and leased entries.
	Pending(ctx context.Context) (int64, error)
	// Lookup returns the entry of id and its state ("pending", "leased",
	// "done", or "" when unknown; "cancelled" when a key of the entry is
	// known tombstoned is not tracked per id), for herald trace.
	Lookup(ctx context.Context, id string) (e Entry, state string, err error)
	Close() error
}

// Entry states (Index.Lookup).
const (
	StatePending = "pending"
	StateLeased  = "leased"
	StateDone    = "done"
)
