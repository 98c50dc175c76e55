package schedule

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is an in-process Index with the same semantics as Redis, down to
// millisecond times and the order Due hands entries out, for `herald dev`
// (no Redis) and unit tests. Its state dies with the process: it is not for
// production, where the index must outlive a restart without a rebuild.
// It is safe for concurrent use.
type Memory struct {
	// Now is the clock that tombstones, done marks and rebuild locks expire
	// by (Add, Cancel, Done, Lookup, Lock); nil is time.Now. Tests set it to
	// move time instead of sleeping. Due takes its time from the caller.
	Now func() time.Time

	mu      sync.Mutex
	entries map[string]*memEntry
	pending entryHeap // by due, then id
	leased  entryHeap // by lease end, then id
	byKey   map[string]map[string]struct{}
	tombs   marks            // cancel key → expiry
	upTo    map[string]int64 // cancel key → the latest event time its live tombstone covers (allTimes: any)
	done    marks            // id → expiry
	ready   map[int]bool
	locks   map[int]memLock
}

var _ Index = (*Memory)(nil)

// memEntry is one pending or leased entry. Times are Unix milliseconds, as
// Redis keeps them, so both stores order and expire alike.
type memEntry struct {
	id     string
	due    int64
	since  int64 // its event's time; unknownTime when it has none
	keys   []string
	record []byte
	leased bool
	until  int64 // lease end, while leased
	pos    int   // index in pending or leased, whichever holds it
	// refresh is when a new copy of its record is due (Entry.Refresh); 0
	// for none.
	refresh int64
}

// An entry without an event time is covered by any tombstone of its keys,
// and a cancellation without one covers every entry of its key.
const (
	unknownTime = math.MinInt64
	allTimes    = math.MaxInt64
)

// millisOr is t in Unix milliseconds, or or when t is zero.
func millisOr(t time.Time, or int64) int64 {
	if t.IsZero() {
		return or
	}
	return t.UnixMilli()
}

// covered reports whether a live tombstone of one of keys covers an entry
// of event time since.
func (m *Memory) covered(keys []string, since, now int64) bool {
	return slices.ContainsFunc(keys, func(k string) bool { return m.tombs.live(k, now) && since <= m.upTo[k] })
}

// trim forgets expired tombstones and done marks.
func (m *Memory) trim(now int64) {
	m.tombs.trim(now, func(k string) { delete(m.upTo, k) })
	m.done.trim(now, nil)
}

type memLock struct {
	owner string
	until int64
}

// NewMemory returns an empty in-process Index.
func NewMemory() *Memory {
	return &Memory{
		entries: map[string]*memEntry{},
		pending: entryHeap{less: func(a, b *memEntry) bool { return a.due < b.due || a.due == b.due && a.id < b.id }},
		leased:  entryHeap{less: func(a, b *memEntry) bool { return a.until < b.until || a.until == b.until && a.id < b.id }},
		byKey:   map[string]map[string]struct{}{},
		tombs:   marks{exp: map[string]int64{}},
		upTo:    map[string]int64{},
		done:    marks{exp: map[string]int64{}},
		ready:   map[int]bool{},
		locks:   map[int]memLock{},
	}
}

func (m *Memory) now() int64 {
	if m.Now != nil {
		return m.Now().UnixMilli()
	}
	return time.Now().UnixMilli()
}

// Add implements Index.
func (m *Memory) Add(ctx context.Context, entries []Entry) ([]string, error) {
	if err := checkEntries(entries); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.trim(now)
	var cancelled []string
	for _, e := range entries {
		if m.done.live(e.ID, now) {
			continue
		}
		if me := m.entries[e.ID]; me != nil {
			// Another copy of its record: only the refresh time moves.
			if e.Refresh.IsZero() {
				me.refresh = 0
			} else if r := e.Refresh.UnixMilli(); me.refresh != 0 && me.refresh < r {
				me.refresh = r
			}
			continue
		}
		since := millisOr(e.EventTime, unknownTime)
		if m.covered(e.Keys, since, now) {
			cancelled = append(cancelled, e.ID)
			continue
		}
		me := &memEntry{id: e.ID, due: e.Due.UnixMilli(), since: since, keys: slices.Clone(e.Keys), record: slices.Clone(e.Record),
			refresh: millisOr(e.Refresh, 0)}
		m.entries[e.ID] = me
		heap.Push(&m.pending, me)
		for _, k := range me.keys {
			ids := m.byKey[k]
			if ids == nil {
				ids = map[string]struct{}{}
				m.byKey[k] = ids
			}
			ids[e.ID] = struct{}{}
		}
	}
	return cancelled, nil
}

// Cancel implements Index.
func (m *Memory) Cancel(ctx context.Context, cs []Cancellation, ttl time.Duration) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.trim(now)
	until := now + ttl.Milliseconds()
	var cancelled []Entry
	for _, c := range cs {
		k, at := c.Key, millisOr(c.At, allTimes)
		if !m.tombs.live(k, now) || at > m.upTo[k] {
			m.upTo[k] = at // a fresh tombstone, or one covering later events
		}
		m.tombs.set(k, until)
		var ids []string
		for id := range m.byKey[k] {
			if e := m.entries[id]; !e.leased && e.since <= m.upTo[k] {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			e := m.entries[id]
			cancelled = append(cancelled, Entry{ID: id, Record: e.record})
			m.remove(e)
		}
	}
	return cancelled, nil
}

// Due implements Index.
func (m *Memory) Due(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Entry, error) {
	if ok, err := leasing(ctx, limit); !ok {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	at := now.UnixMilli()
	// As the Redis script does: the first limit pending entries by due and
	// the first limit ended leases by lease end, then the earliest due of
	// those.
	var cand []*memEntry
	for n := 0; n < limit && m.pending.Len() > 0 && m.pending.items[0].due <= at; n++ {
		cand = append(cand, heap.Pop(&m.pending).(*memEntry))
	}
	for n := 0; n < limit && m.leased.Len() > 0 && m.leased.items[0].until <= at; n++ {
		cand = append(cand, heap.Pop(&m.leased).(*memEntry))
	}
	slices.SortFunc(cand, func(a, b *memEntry) int {
		return cmp.Or(cmp.Compare(a.due, b.due), strings.Compare(a.id, b.id))
	})
	var out []Entry
	for i, me := range cand {
		if i < limit {
			me.leased, me.until = true, at+lease.Milliseconds()
			out = append(out, me.entry())
		}
		if me.leased {
			heap.Push(&m.leased, me)
		} else {
			heap.Push(&m.pending, me)
		}
	}
	return out, nil
}

// Stale implements Index.
func (m *Memory) Stale(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Entry, error) {
	if ok, err := leasing(ctx, limit); !ok {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	at := now.UnixMilli()
	// A scan: the in-process index is for herald dev and tests.
	var stale []*memEntry
	for _, me := range m.entries {
		if me.refresh != 0 && me.refresh <= at {
			stale = append(stale, me)
		}
	}
	slices.SortFunc(stale, func(a, b *memEntry) int {
		return cmp.Or(cmp.Compare(a.refresh, b.refresh), strings.Compare(a.id, b.id))
	})
	var out []Entry
	for _, me := range stale[:min(limit, len(stale))] {
		me.refresh = at + lease.Milliseconds()
		out = append(out, me.entry())
	}
	return out, nil
}

// leasing reports whether Due or Stale has anything to do: not when ctx
// has ended (its error) or limit allows no entry.
func leasing(ctx context.Context, limit int) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return limit > 0, nil
}

// Done implements Index.
func (m *Memory) Done(ctx context.Context, ids []string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.trim(now)
	until := now + ttl.Milliseconds()
	for _, id := range ids {
		if me := m.entries[id]; me != nil {
			m.remove(me)
		}
		m.done.set(id, until)
	}
	return nil
}

// remove drops a pending or leased entry from every structure.
func (m *Memory) remove(me *memEntry) {
	if me.leased {
		heap.Remove(&m.leased, me.pos)
	} else {
		heap.Remove(&m.pending, me.pos)
	}
	for _, k := range me.keys {
		if ids := m.byKey[k]; ids != nil {
			delete(ids, me.id)
			if len(ids) == 0 {
				delete(m.byKey, k)
			}
		}
	}
	delete(m.entries, me.id)
}

// Missing implements Index.
func (m *Memory) Missing(ctx context.Context, n int) ([]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for p := range n {
		if !m.ready[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

// MarkReady implements Index.
func (m *Memory) MarkReady(ctx context.Context, partition int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ready[partition] = true
	return nil
}

// Lock implements Index.
func (m *Memory) Lock(ctx context.Context, partition int, owner string, ttl time.Duration) (bool, error) {
	ms, err := lockMillis(owner, ttl)
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if l, ok := m.locks[partition]; ok && l.until > now && l.owner != owner {
		return false, nil
	}
	m.locks[partition] = memLock{owner: owner, until: now + ms}
	return true, nil
}

// Unlock implements Index.
func (m *Memory) Unlock(ctx context.Context, partition int, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.locks[partition]; ok && l.owner == owner {
		delete(m.locks, partition)
	}
	return nil
}

// Pending implements Index.
func (m *Memory) Pending(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.entries)), nil
}

// Lookup implements Index.
func (m *Memory) Lookup(ctx context.Context, id string) (Entry, string, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if me := m.entries[id]; me != nil {
		if me.leased {
			return me.entry(), StateLeased, nil
		}
		return me.entry(), StatePending, nil
	}
	if m.done.live(id, m.now()) {
		return Entry{ID: id}, StateDone, nil
	}
	return Entry{}, "", nil
}

// Close implements Index; Memory holds nothing to release.
func (m *Memory) Close() error { return nil }

// entry is a copy of me, which the caller may keep and change.
func (me *memEntry) entry() Entry {
	return Entry{ID: me.id, Due: time.UnixMilli(me.due), Keys: slices.Clone(me.keys), Record: slices.Clone(me.record)}
}

// entryHeap is a min-heap of entries that keeps each entry's position, so
// Done and Cancel remove from the middle in O(log n).
type entryHeap struct {
	items []*memEntry
	less  func(a, b *memEntry) bool
}

func (h *entryHeap) Len() int           { return len(h.items) }
func (h *entryHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *entryHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].pos, h.items[j].pos = i, j
}
func (h *entryHeap) Push(x any) {
	me := x.(*memEntry)
	me.pos = len(h.items)
	h.items = append(h.items, me)
}
func (h *entryHeap) Pop() any {
	n := len(h.items) - 1
	me := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	return me
}

// marks are names (cancel keys or ids) remembered until an expiry, which
// only ever moves later: applying the same marks in any order ends alike.
// A heap of expiries finds the expired ones without a scan; an entry
// superseded by a later expiry is skipped when it comes up.
type marks struct {
	exp map[string]int64
	h   markHeap
}

func (ms *marks) set(name string, until int64) {
	if cur, ok := ms.exp[name]; ok && cur >= until {
		return
	}
	ms.exp[name] = until
	heap.Push(&ms.h, mark{name: name, until: until})
}

func (ms *marks) live(name string, now int64) bool {
	until, ok := ms.exp[name]
	return ok && until > now
}

// trim forgets the names expired at now, calling gone (when not nil) with
// each.
func (ms *marks) trim(now int64, gone func(name string)) {
	for len(ms.h) > 0 && ms.h[0].until <= now {
		x := heap.Pop(&ms.h).(mark)
		if ms.exp[x.name] == x.until {
			delete(ms.exp, x.name)
			if gone != nil {
				gone(x.name)
			}
		}
	}
}

type mark struct {
	name  string
	until int64
}

type markHeap []mark

func (h markHeap) Len() int           { return len(h) }
func (h markHeap) Less(i, j int) bool { return h[i].until < h[j].until }
func (h markHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *markHeap) Push(x any)        { *h = append(*h, x.(mark)) }
func (h *markHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// errNoID rejects an entry without an id: one entry per id, so an empty
// one would stand for every notification whose id went missing.
var errNoID = errors.New("schedule: add: an entry has no id")

// checkEntries is Add's argument check, shared by both stores.
func checkEntries(entries []Entry) error {
	for _, e := range entries {
		if e.ID == "" {
			return errNoID
		}
	}
	return nil
}

// lockMillis is Lock's argument check, shared by both stores: Redis
// expires a lock in whole milliseconds and refuses none.
func lockMillis(owner string, ttl time.Duration) (int64, error) {
	if owner == "" {
		return 0, errors.New("schedule: lock: no owner")
	}
	if ttl < time.Millisecond {
		return 0, fmt.Errorf("schedule: lock: ttl %v is under a millisecond", ttl)
	}
	return ttl.Milliseconds(), nil
}
