package attendance

import (
	"context"
	"sync"
	"time"
)

// Memory is a Store in process memory, for herald's single-process dev mode
// and tests, with the same semantics as Redis, expiry included: a class is
// forgotten TTL after its last Apply, and expired classes are swept now and
// then so memory stays bounded. The zero value is not usable; call
// NewMemory.
type Memory struct {
	mu        sync.Mutex
	classes   map[string]*class
	now       func() time.Time
	nextSweep time.Time
}

// class is one class's state, the fields of the Redis layout.
type class struct {
	capacity   int
	closed     bool
	version    int64
	crossings  int64
	disarmed   bool
	pending    int64
	published  int64
	booked     map[string]struct{}
	tombstones map[string]struct{}
	expires    time.Time
}

// sweepEvery is how often Apply drops expired classes.
const sweepEvery = time.Minute

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{classes: map[string]*class{}, now: time.Now}
}

// lookup returns the live class, or nil; an expired one is dropped.
// Called with m.mu held.
func (m *Memory) lookup(id string, now time.Time) *class {
	c := m.classes[id]
	if c != nil && !now.Before(c.expires) {
		delete(m.classes, id)
		return nil
	}
	return c
}

// Apply implements Store.
func (m *Memory) Apply(_ context.Context, op Op) (State, error) {
	if err := validate(op); err != nil {
		return State{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	c := m.lookup(op.ClassID, now)
	if c == nil {
		c = &class{booked: map[string]struct{}{}, tombstones: map[string]struct{}{}}
		m.classes[op.ClassID] = c
	}
	changed := false
	if !c.closed {
		if op.Capacity > 0 {
			c.capacity = op.Capacity
		}
		switch op.Kind {
		case Add:
			if _, dead := c.tombstones[op.BookingID]; !dead {
				if _, ok := c.booked[op.BookingID]; !ok {
					c.booked[op.BookingID] = struct{}{}
					changed = true
				}
			}
		case Remove:
			c.tombstones[op.BookingID] = struct{}{}
			if _, ok := c.booked[op.BookingID]; ok {
				delete(c.booked, op.BookingID)
				changed = true
			}
		case Close:
			c.closed = true
			changed = true
		}
	}
	if changed {
		c.version++
		if !c.closed && op.Need > 0 {
			if len(c.booked) >= op.Need {
				if !c.disarmed {
					c.disarmed = true
					c.crossings++
					c.pending = c.crossings
				}
			} else {
				c.disarmed = false
			}
		}
	}
	c.expires = now.Add(time.Duration(ttlMillis(op.TTL)) * time.Millisecond)
	s := c.state(op.ClassID)
	s.Changed = changed
	return s, nil
}

// sweep drops expired classes at most every sweepEvery. Called with m.mu
// held.
func (m *Memory) sweep(now time.Time) {
	if now.Before(m.nextSweep) {
		return
	}
	m.nextSweep = now.Add(sweepEvery)
	for id, c := range m.classes {
		if !now.Before(c.expires) {
			delete(m.classes, id)
		}
	}
}

// state describes c.
func (c *class) state(id string) State {
	return State{
		ClassID:     id,
		Confirmed:   len(c.booked),
		Capacity:    c.capacity,
		Closed:      c.closed,
		Version:     c.version,
		Crossings:   c.crossings,
		PendingBusy: c.pending,
		Unpublished: c.version > c.published,
	}
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, classID string) (State, error) {
	if err := checkClassID(classID); err != nil {
		return State{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.lookup(classID, m.now())
	if c == nil {
		return State{ClassID: classID}, nil
	}
	return c.state(classID), nil
}

// MarkBusyPublished implements Store.
func (m *Memory) MarkBusyPublished(_ context.Context, classID string, crossing int64) error {
	if err := checkClassID(classID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.lookup(classID, m.now()); c != nil && crossing > 0 && c.pending == crossing {
		c.pending = 0
	}
	return nil
}

// MarkPublished implements Store.
func (m *Memory) MarkPublished(_ context.Context, classID string, version int64) error {
	if err := checkClassID(classID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.lookup(classID, m.now()); c != nil {
		if want := min(version, c.version); want > c.published {
			c.published = want
		}
	}
	return nil
}
