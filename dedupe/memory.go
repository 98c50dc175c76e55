package dedupe

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// minSweep is the fewest writes Memory makes between sweeps of expired keys.
// A sweep also waits for as many writes as there are keys, so its cost per
// write stays constant however many keys are live, and the map holds at
// most about twice what is live.
const minSweep = 4096

// Memory is an in-process Store with the same semantics as Redis, for
// `herald dev` (no Redis) and unit tests. Leases and retention are measured
// with Options.Clock, so tests move time instead of sleeping. Its state dies
// with the process: it is not for production.
type Memory struct {
	opts Options

	mu     sync.Mutex
	keys   map[string]memEntry
	writes int // since the last sweep
	closed bool

	duplicateSends atomic.Uint64
}

var _ Store = (*Memory)(nil)

type memEntry struct {
	state   State
	owner   string
	pid     string
	reason  string
	expires time.Time
}

// NewMemory returns an empty in-process Store.
func NewMemory(opts Options) *Memory {
	return &Memory{opts: opts.withDefaults(), keys: make(map[string]memEntry)}
}

// DuplicateSends returns how many MarkSent calls found the key already sent
// by another owner or with another provider id (see Redis.DuplicateSends).
func (m *Memory) DuplicateSends() uint64 { return m.duplicateSends.Load() }

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// Claim implements Store.
func (m *Memory) Claim(ctx context.Context, id, owner string, lease time.Duration) (Claim, error) {
	if err := checkOwner("claim", id, owner); err != nil {
		return Claim{}, err
	}
	if err := checkLease(id, lease); err != nil {
		return Claim{}, err
	}
	lease = lease.Truncate(time.Millisecond) // as Redis, which counts in ms
	now, unlock, err := m.lock(ctx, "claim", id)
	if err != nil {
		return Claim{}, err
	}
	defer unlock()
	e, ok := m.get(id, now)
	if ok && !(e.state == StateInFlight && e.owner == owner) {
		return e.claim(now), nil
	}
	m.put(id, memEntry{state: StateInFlight, owner: owner, expires: now.Add(lease)}, now)
	return Claim{Acquired: true, State: StateInFlight, Owner: owner, LeaseLeft: lease}, nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, id string) (Claim, error) {
	if err := checkID("get", id); err != nil {
		return Claim{}, err
	}
	now, unlock, err := m.lock(ctx, "get", id)
	if err != nil {
		return Claim{}, err
	}
	defer unlock()
	e, ok := m.get(id, now)
	if !ok {
		return Claim{}, nil
	}
	return e.claim(now), nil
}

// MarkSent implements Store.
func (m *Memory) MarkSent(ctx context.Context, id, owner, providerMessageID string) error {
	if err := checkOwner("mark sent", id, owner); err != nil {
		return err
	}
	now, unlock, err := m.lock(ctx, "mark sent", id)
	if err != nil {
		return err
	}
	defer unlock()
	if e, ok := m.get(id, now); ok && e.state == StateSent {
		if e.owner != owner || e.pid != providerMessageID {
			m.duplicateSends.Add(1)
		}
		return nil
	}
	m.put(id, memEntry{state: StateSent, owner: owner, pid: providerMessageID, expires: now.Add(m.opts.Retention)}, now)
	return nil
}

// MarkFailed implements Store.
func (m *Memory) MarkFailed(ctx context.Context, id, owner, reason string) error {
	if err := checkOwner("mark failed", id, owner); err != nil {
		return err
	}
	now, unlock, err := m.lock(ctx, "mark failed", id)
	if err != nil {
		return err
	}
	defer unlock()
	if e, ok := m.get(id, now); ok && e.state == StateSent {
		return nil
	}
	m.put(id, memEntry{state: StateFailed, owner: owner, reason: reason, expires: now.Add(m.opts.Retention)}, now)
	return nil
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, id, owner string) error {
	if err := checkOwner("release", id, owner); err != nil {
		return err
	}
	now, unlock, err := m.lock(ctx, "release", id)
	if err != nil {
		return err
	}
	defer unlock()
	if e, ok := m.get(id, now); ok && e.state == StateInFlight && e.owner == owner {
		delete(m.keys, id)
	}
	return nil
}

// lock takes the mutex unless ctx is done or the store is closed, and
// reads the clock once for the whole transition.
func (m *Memory) lock(ctx context.Context, op, id string) (time.Time, func(), error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, nil, ctxErr(op, id, err)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return time.Time{}, nil, errClosed
	}
	return m.opts.Clock(), m.mu.Unlock, nil
}

// get returns id's live entry; an expired one is deleted, as Redis would.
func (m *Memory) get(id string, now time.Time) (memEntry, bool) {
	e, ok := m.keys[id]
	if ok && !now.Before(e.expires) {
		delete(m.keys, id)
		return memEntry{}, false
	}
	return e, ok
}

func (m *Memory) put(id string, e memEntry, now time.Time) {
	m.keys[id] = e
	m.writes++
	if m.writes >= max(minSweep, len(m.keys)) {
		m.writes = 0
		for k, v := range m.keys {
			if !now.Before(v.expires) {
				delete(m.keys, k)
			}
		}
	}
}

func (e memEntry) claim(now time.Time) Claim {
	c := Claim{State: e.state, Owner: e.owner, ProviderMessageID: e.pid, Reason: e.reason}
	if e.state == StateInFlight {
		c.LeaseLeft = e.expires.Sub(now)
	}
	return c
}
