package suppress

import (
	"context"
	"sync"
	"time"
)

// Memory is an in-process Store for `herald dev` and unit tests. Its list
// dies with the process.
type Memory struct {
	now     func() time.Time
	mu      sync.Mutex
	entries map[[2]string]Entry
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty list; now nil means time.Now.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, entries: make(map[[2]string]Entry)}
}

// Add implements Store.
func (m *Memory) Add(_ context.Context, channel, address, reason string) error {
	address = Normalize(channel, address)
	if err := check(channel, address); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{channel, address}
	if _, ok := m.entries[k]; !ok {
		m.entries[k] = Entry{Channel: channel, Address: address, Reason: reason, At: m.now().UTC().Truncate(time.Millisecond)}
	}
	return nil
}

// Lookup implements Store.
func (m *Memory) Lookup(_ context.Context, channel, address string) (Entry, bool, error) {
	address = Normalize(channel, address)
	if err := check(channel, address); err != nil {
		return Entry{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[[2]string{channel, address}]
	return e, ok, nil
}

// Remove implements Store.
func (m *Memory) Remove(_ context.Context, channel, address string) (bool, error) {
	address = Normalize(channel, address)
	if err := check(channel, address); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{channel, address}
	_, ok := m.entries[k]
	delete(m.entries, k)
	return ok, nil
}

// List implements Store.
func (m *Memory) List(_ context.Context, channel string) ([]Entry, error) {
	if channel != "" && !validChannel(channel) {
		return nil, check(channel, "x")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Entry
	for k, e := range m.entries {
		if channel == "" || k[0] == channel {
			out = append(out, e)
		}
	}
	sortEntries(out)
	return out, nil
}
