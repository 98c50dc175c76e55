package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Memory is a Store in process memory with the Redis store's semantics,
// for herald dev (one process) and tests. Its changes reach only the
// subscribers of the same Memory.
type Memory struct {
	limits Limits

	mu    sync.Mutex
	feeds map[string]*memFeed
	subs  map[int]chan Change
	next  int
}

type memFeed struct {
	entries []memEntry           // oldest first
	seen    map[string]time.Time // id → created, trimmed by age only
	pos     map[string]string    // id → position, for entries held
	read    map[string]time.Time
	live    map[string]memLive
	lastMs  uint64
	lastSeq uint64
}

type memLive struct {
	version int64
	data    []byte
}

type memEntry struct {
	pos string
	ms  uint64
	seq uint64
	id  string
	b   []byte
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory with limits (zero fields take
// DefaultLimits').
func NewMemory(limits Limits) *Memory {
	return &Memory{limits: limits.withDefaults(), feeds: map[string]*memFeed{}, subs: map[int]chan Change{}}
}

func (m *Memory) feed(person string) *memFeed {
	f := m.feeds[person]
	if f == nil {
		f = &memFeed{seen: map[string]time.Time{}, pos: map[string]string{}, read: map[string]time.Time{}, live: map[string]memLive{}}
		m.feeds[person] = f
	}
	return f
}

// Append implements Store.
func (m *Memory) Append(_ context.Context, person string, it Item, now time.Time) (Appended, error) {
	b, created, err := encode(person, it, now)
	if err != nil {
		return Appended{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.feed(person)
	minT := now.Add(-m.limits.MaxAge)
	for id, c := range f.seen {
		if c.Before(minT.Truncate(time.Millisecond)) {
			delete(f.seen, id)
		}
	}
	if created.Before(minT.Truncate(time.Millisecond)) {
		return Appended{}, nil
	}
	if _, ok := f.seen[it.ID]; ok {
		return Appended{Pos: f.pos[it.ID]}, nil
	}
	ms, seq := uint64(now.UnixMilli()), uint64(0)
	prev := ""
	if n := len(f.entries); n > 0 || f.lastMs > 0 {
		if n > 0 {
			prev = f.entries[n-1].pos
		}
		if ms <= f.lastMs {
			ms, seq = f.lastMs, f.lastSeq+1
		}
	}
	f.lastMs, f.lastSeq = ms, seq
	pos := fmt.Sprintf("%d-%d", ms, seq)
	f.entries = append(f.entries, memEntry{pos: pos, ms: ms, seq: seq, id: it.ID, b: b})
	f.seen[it.ID] = created
	f.pos[it.ID] = pos
	drop, minMs := max(len(f.entries)-m.limits.MaxItems, 0), uint64(minT.UnixMilli())
	for drop < len(f.entries) && f.entries[drop].ms < minMs {
		drop++
	}
	if drop > 0 {
		for _, e := range f.entries[:drop] {
			delete(f.pos, e.id)
			delete(f.read, e.id)
		}
		f.entries = append([]memEntry(nil), f.entries[drop:]...)
	}
	m.publish(Change{Kind: KindItem, Person: person, Pos: pos, Prev: prev, Data: b})
	return Appended{Pos: pos, Added: true}, nil
}

func (m *Memory) unread(f *memFeed) int {
	n := 0
	for _, e := range f.entries {
		if _, ok := f.read[e.id]; !ok {
			n++
		}
	}
	return n
}

func (m *Memory) item(f *memFeed, e memEntry) (Item, error) {
	it, err := decode(e.b, e.pos)
	if err != nil {
		return Item{}, err
	}
	if t, ok := f.read[e.id]; ok {
		it.ReadAt = &t
	}
	return it, nil
}

// List implements Store.
func (m *Memory) List(_ context.Context, person string, limit int) ([]Item, int, error) {
	if err := CheckPerson(person); err != nil {
		return nil, 0, invalid("person: %v", err)
	}
	if limit <= 0 {
		return nil, 0, invalid("limit %d", limit)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.feed(person)
	out := []Item{}
	for i := len(f.entries) - 1; i >= 0 && len(out) < limit; i-- {
		it, err := m.item(f, f.entries[i])
		if err != nil {
			return nil, 0, err
		}
		out = append(out, it)
	}
	return out, m.unread(f), nil
}

// After implements Store.
func (m *Memory) After(_ context.Context, person, pos string, limit int) ([]Item, error) {
	if err := CheckPerson(person); err != nil {
		return nil, invalid("person: %v", err)
	}
	var ms, seq uint64
	if pos != "" {
		var err error
		if ms, seq, err = ParsePos(pos); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.feed(person)
	i := sort.Search(len(f.entries), func(i int) bool {
		e := f.entries[i]
		return pos == "" || e.ms > ms || (e.ms == ms && e.seq > seq)
	})
	out := []Item{}
	for ; i < len(f.entries) && len(out) < limit; i++ {
		it, err := m.item(f, f.entries[i])
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// Last implements Store.
func (m *Memory) Last(_ context.Context, person string) (string, error) {
	if err := CheckPerson(person); err != nil {
		return "", invalid("person: %v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.feed(person)
	if len(f.entries) == 0 {
		return "", nil
	}
	return f.entries[len(f.entries)-1].pos, nil
}

// Read implements Store.
func (m *Memory) Read(_ context.Context, person, id string, at time.Time) (int, bool, error) {
	if err := CheckPerson(person); err != nil {
		return 0, false, invalid("person: %v", err)
	}
	at = at.UTC().Truncate(time.Millisecond)
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.feed(person)
	if _, ok := f.pos[id]; !ok {
		return m.unread(f), false, nil
	}
	if _, ok := f.read[id]; !ok {
		f.read[id] = at
		u := m.unread(f)
		b, _ := json.Marshal(ReadJSON{ID: id, ReadAt: at, Unread: u})
		m.publish(Change{Kind: KindRead, Person: person, Data: b})
	}
	return m.unread(f), true, nil
}

// SetLive implements Store. Values do not expire.
func (m *Memory) SetLive(_ context.Context, person, key string, version int64, data []byte) (bool, error) {
	if err := checkLive(person, key, data); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.feed(person)
	if cur, ok := f.live[key]; ok && cur.version >= version {
		return false, nil
	}
	b := append([]byte(nil), data...)
	f.live[key] = memLive{version: version, data: b}
	m.publish(Change{Kind: KindLive, Person: person, Pos: key, Data: b})
	return true, nil
}

// Live implements Store.
func (m *Memory) Live(_ context.Context, person string) (map[string][]byte, error) {
	if err := CheckPerson(person); err != nil {
		return nil, invalid("person: %v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range m.feed(person).live {
		out[k] = v.data
	}
	return out, nil
}

// publish hands c to every subscriber; m.mu is held, so subscribers see
// changes in the order they were made. A subscriber that keeps up gets
// every change; the buffer is large, and one that falls behind it is told
// to resync rather than blocking every feed.
func (m *Memory) publish(c Change) {
	for _, ch := range m.subs {
		select {
		case ch <- c:
		default:
			select {
			case <-ch: // make room for the resync
			default:
			}
			select {
			case ch <- Change{Kind: KindResync}:
			default:
			}
		}
	}
}

// Subscribe implements Store.
func (m *Memory) Subscribe(ctx context.Context, fn func(Change)) error {
	ch := make(chan Change, 4096)
	m.mu.Lock()
	id := m.next
	m.next++
	m.subs[id] = ch
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.subs, id)
		m.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-ch:
			fn(c)
		}
	}
}
