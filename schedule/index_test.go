package schedule_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/schedule"
)

// t0 is the suite's start time, on a whole millisecond as Redis keeps it.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const long = time.Hour // a TTL or lease no test outlives

// clock is a settable clock for tombstone, done mark and lock expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// opener makes a fresh, empty index for t whose marks expire by now.
type opener func(t *testing.T, now func() time.Time) schedule.Index

func openMemory(t *testing.T, now func() time.Time) schedule.Index {
	m := schedule.NewMemory()
	m.Now = now
	return m
}

// openRedis makes indexes on c, each under its test's own prefix.
func openRedis(c redis.UniversalClient) opener {
	return func(t *testing.T, now func() time.Time) schedule.Index {
		ix := schedule.NewRedis(c, schedule.RedisOptions{Prefix: "test:" + t.Name(), Clock: now})
		t.Cleanup(func() { _ = ix.Close() })
		return ix
	}
}

func TestMemory(t *testing.T) { runSuite(t, openMemory) }

func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	runSuite(t, openRedis(srv.Client()))
}

// TestRedisCluster runs the suite on a three-master cluster: every script
// names keys of the one hash tag, and builds the others (cancel key sets,
// locks) inside it, so all of them are in one slot and run on its master.
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	client := c.Client()
	runSuite(t, openRedis(client))

	ctx := context.Background()
	ix := schedule.NewRedis(client, schedule.RedisOptions{Prefix: "slots"})
	if _, err := ix.Add(ctx, []schedule.Entry{entry("a", t0, "k1"), entry("b", t0, "k2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Cancel(ctx, anyTime("k2"), long); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(ix.Done(ctx, []string{"c"}, long), ix.MarkReady(ctx, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Lock(ctx, 3, "me", long); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var keys []string
	err := client.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		found, err := n.Keys(ctx, "slots:*").Result()
		mu.Lock()
		keys = append(keys, found...)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{"slots:{s}:at", "slots:{s}:done", "slots:{s}:due", "slots:{s}:ek", "slots:{s}:k:k1",
		"slots:{s}:lock:3", "slots:{s}:ready", "slots:{s}:rec", "slots:{s}:tomb"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
	slot := client.ClusterKeySlot(ctx, keys[0]).Val()
	for _, k := range keys {
		if s := client.ClusterKeySlot(ctx, k).Val(); s != slot {
			t.Errorf("key %q in slot %d, %q in %d", k, s, keys[0], slot)
		}
	}
}

// runSuite runs every case on fresh indexes from open, in parallel.
func runSuite(t *testing.T, open opener) {
	cases := []struct {
		name string
		fn   func(t *testing.T, open opener)
	}{
		{"DueOrder", testDueOrder},
		{"Lease", testLease},
		{"Done", testDone},
		{"AddPendingIsNoOp", testAddPendingIsNoOp},
		{"Cancel", testCancel},
		{"CancelBeforeAdd", testCancelBeforeAdd},
		{"CancelLeased", testCancelLeased},
		{"Commute", testCommute},
		{"CancelOrdered", testCancelOrdered},
		{"CancelBeforeEpoch", testCancelBeforeEpoch},
		{"CommuteOrdered", testCommuteOrdered},
		{"OrderedExpiry", testOrderedExpiry},
		{"Expiry", testExpiry},
		{"Ready", testReady},
		{"Lock", testLock},
		{"Pending", testPending},
		{"Lookup", testLookup},
		{"LargeBatch", testLargeBatch},
		{"AnyBytes", testAnyBytes},
		{"Refresh", testRefresh},
		{"RefreshCommutes", testRefreshCommutes},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// fresh is an index from open and its clock, at t0.
func fresh(t *testing.T, open opener) (schedule.Index, *clock) {
	c := &clock{t: t0}
	return open(t, c.Now), c
}

func entry(id string, due time.Time, keys ...string) schedule.Entry {
	return schedule.Entry{ID: id, Due: due, Keys: keys, Record: []byte("record of " + id)}
}

func at(d time.Duration) time.Time { return t0.Add(d) }

// since is e scheduled by an event at t.
func since(e schedule.Entry, t time.Time) schedule.Entry {
	e.EventTime = t
	return e
}

// by is key's cancellation by an event at t.
func by(key string, t time.Time) schedule.Cancellation {
	return schedule.Cancellation{Key: key, At: t}
}

func add(t *testing.T, ix schedule.Index, es ...schedule.Entry) []string {
	t.Helper()
	cancelled, err := ix.Add(context.Background(), es)
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	return cancelled
}

// anyTime is keys' cancellations by events without a time: they cover
// every entry under the keys.
func anyTime(keys ...string) []schedule.Cancellation {
	var cs []schedule.Cancellation
	for _, k := range keys {
		cs = append(cs, schedule.Cancellation{Key: k})
	}
	return cs
}

func cancel(t *testing.T, ix schedule.Index, ttl time.Duration, keys ...string) []string {
	t.Helper()
	return cancelAt(t, ix, ttl, anyTime(keys...)...)
}

func cancelAt(t *testing.T, ix schedule.Index, ttl time.Duration, cs ...schedule.Cancellation) []string {
	t.Helper()
	es, err := ix.Cancel(context.Background(), cs, ttl)
	if err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	var ids []string
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

func due(t *testing.T, ix schedule.Index, now time.Time, limit int, lease time.Duration) []schedule.Entry {
	t.Helper()
	return leased(t, "Due", ix.Due, now, limit, lease)
}

// leased is what op (Index.Due or Stale) leases, failing t on an error.
func leased(t *testing.T, name string, op func(context.Context, time.Time, int, time.Duration) ([]schedule.Entry, error),
	now time.Time, limit int, lease time.Duration) []schedule.Entry {
	t.Helper()
	es, err := op(context.Background(), now, limit, lease)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return es
}

func done(t *testing.T, ix schedule.Index, ttl time.Duration, ids ...string) {
	t.Helper()
	if err := ix.Done(context.Background(), ids, ttl); err != nil {
		t.Fatalf("Done: %v", err)
	}
}

func pending(t *testing.T, ix schedule.Index) int64 {
	t.Helper()
	n, err := ix.Pending(context.Background())
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return n
}

func lookup(t *testing.T, ix schedule.Index, id string) (schedule.Entry, string) {
	t.Helper()
	e, state, err := ix.Lookup(context.Background(), id)
	if err != nil {
		t.Fatalf("Lookup %s: %v", id, err)
	}
	return e, state
}

func idsOf(es []schedule.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// sameEntry reports how got differs from want, or "".
func sameEntry(got, want schedule.Entry) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("id %q, want %q", got.ID, want.ID)
	case !got.Due.Equal(want.Due):
		return fmt.Sprintf("%s: due %v, want %v", want.ID, got.Due, want.Due)
	case !slices.Equal(got.Keys, want.Keys) && len(got.Keys)+len(want.Keys) > 0:
		return fmt.Sprintf("%s: keys %q, want %q", want.ID, got.Keys, want.Keys)
	case !bytes.Equal(got.Record, want.Record):
		return fmt.Sprintf("%s: record %.40q, want %.40q", want.ID, got.Record, want.Record)
	}
	return ""
}

func sameEntries(t *testing.T, got, want []schedule.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", idsOf(got), idsOf(want))
	}
	for i := range got {
		if d := sameEntry(got[i], want[i]); d != "" {
			t.Fatalf("entry %d: %s (got %q)", i, d, idsOf(got))
		}
	}
}

func testDueOrder(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	c, a, b := entry("c", at(3*time.Second), "k1"), entry("a", at(time.Second), "k1", "k2"), entry("b", at(2*time.Second))
	late := entry("late", at(10*time.Second))
	tie1, tie2 := entry("t2", at(4*time.Second)), entry("t1", at(4*time.Second))
	add(t, ix, c, late, a, b, tie1, tie2)

	if es := due(t, ix, t0, 10, long); len(es) != 0 {
		t.Fatalf("Due before anything is due: %q", idsOf(es))
	}
	sameEntries(t, due(t, ix, at(2*time.Second), 10, long), []schedule.Entry{a, b})   // due at or before now
	sameEntries(t, due(t, ix, at(5*time.Second), 2, long), []schedule.Entry{c, tie2}) // limit; ties by id
	sameEntries(t, due(t, ix, at(5*time.Second), 10, long), []schedule.Entry{tie1})
	if es := due(t, ix, at(time.Minute), 0, long); len(es) != 0 {
		t.Fatalf("Due with limit 0: %q", idsOf(es))
	}
	sameEntries(t, due(t, ix, at(time.Minute), 10, long), []schedule.Entry{late})
}

func testLease(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	a := entry("a", at(-10*time.Second), "k")
	add(t, ix, a)
	sameEntries(t, due(t, ix, t0, 10, time.Minute), []schedule.Entry{a})
	if _, state := lookup(t, ix, "a"); state != schedule.StateLeased {
		t.Fatalf("state %q after Due, want leased", state)
	}
	if es := due(t, ix, at(time.Minute-time.Millisecond), 10, time.Minute); len(es) != 0 {
		t.Fatalf("Due during the lease: %q", idsOf(es))
	}

	// After the lease (it ends at t0+1m), a is handed out again, in due
	// order among pending entries: before b, due after it, and after the
	// earlier z.
	b, z := entry("b", at(5*time.Second)), entry("z", at(-time.Minute))
	add(t, ix, b, z)
	sameEntries(t, due(t, ix, at(time.Minute), 10, time.Minute), []schedule.Entry{z, a, b})
	// The new lease counts from that Due.
	if es := due(t, ix, at(90*time.Second), 10, time.Minute); len(es) != 0 {
		t.Fatalf("Due during the second lease: %q", idsOf(es))
	}
	// Ended leases compete with pending entries by due, whichever is
	// earlier going first.
	done(t, ix, long, "z", "b")
	c, early := entry("c", at(100*time.Second)), entry("early", at(-2*time.Hour))
	add(t, ix, c, early)
	sameEntries(t, due(t, ix, at(2*time.Minute), 1, time.Minute), []schedule.Entry{early})
	sameEntries(t, due(t, ix, at(2*time.Minute), 1, time.Minute), []schedule.Entry{a})
	sameEntries(t, due(t, ix, at(2*time.Minute), 10, time.Minute), []schedule.Entry{c})
	if n := pending(t, ix); n != 3 {
		t.Fatalf("Pending %d, want 3 (all leased)", n)
	}
}

func testDone(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	a, b := entry("a", t0, "k"), entry("b", at(time.Hour), "k")
	add(t, ix, a, b)
	due(t, ix, t0, 10, time.Minute)
	done(t, ix, long, "a", "b") // a leased, b pending: both go
	if n := pending(t, ix); n != 0 {
		t.Fatalf("Pending %d after Done, want 0", n)
	}
	if es := due(t, ix, at(2*time.Hour), 10, time.Minute); len(es) != 0 {
		t.Fatalf("Due after Done: %q", idsOf(es))
	}
	// A re-Add (a rebuild, a re-published record) is ignored, not reported
	// cancelled.
	if c := add(t, ix, a, b); len(c) != 0 {
		t.Fatalf("re-Add after Done reported %q cancelled", c)
	}
	if n := pending(t, ix); n != 0 {
		t.Fatalf("Pending %d after re-Add of done ids, want 0", n)
	}
	// Done first, Add after: the same.
	done(t, ix, long, "c")
	add(t, ix, entry("c", t0))
	if _, state := lookup(t, ix, "c"); state != schedule.StateDone {
		t.Fatalf("c state %q, want done", state)
	}
	// The cancel key is free of a and b: a new entry under it stays.
	add(t, ix, entry("d", t0, "k"))
	if c := cancel(t, ix, long, "k"); !slices.Equal(c, []string{"d"}) {
		t.Fatalf("Cancel k: %q, want [d]", c)
	}
}

func testAddPendingIsNoOp(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	a := entry("a", at(time.Second), "k1")
	add(t, ix, a)
	other := schedule.Entry{ID: "a", Due: at(-time.Hour), Keys: []string{"k2"}, Record: []byte("another record")}
	if c := add(t, ix, other); len(c) != 0 {
		t.Fatalf("Add of a pending id: cancelled %q", c)
	}
	e, state := lookup(t, ix, "a")
	if d := sameEntry(e, a); d != "" || state != schedule.StatePending {
		t.Fatalf("after a second Add: %s, state %q", d, state)
	}
	// Within one call, the first of an id wins.
	b1, b2 := entry("b", at(time.Second)), entry("b", at(2*time.Second))
	b2.Record = []byte("second")
	add(t, ix, b1, b2)
	if e, _ := lookup(t, ix, "b"); sameEntry(e, b1) != "" {
		t.Fatalf("b is %+v, want the first", e)
	}
	// A leased one stays leased, its lease untouched.
	due(t, ix, at(time.Second), 10, time.Minute)
	add(t, ix, a, b2)
	if _, state := lookup(t, ix, "a"); state != schedule.StateLeased {
		t.Fatalf("a state %q after re-Add while leased", state)
	}
	if es := due(t, ix, at(30*time.Second), 10, time.Minute); len(es) != 0 {
		t.Fatalf("re-Add while leased made it due: %q", idsOf(es))
	}
	// The tombstone of k2 (other's key) does not touch a.
	if c := cancel(t, ix, long, "k2"); len(c) != 0 {
		t.Fatalf("Cancel k2: %q", c)
	}
	if n := pending(t, ix); n != 2 {
		t.Fatalf("Pending %d, want 2", n)
	}
}

func testCancel(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	add(t, ix, entry("a", t0, "k1"), entry("b", t0, "k1", "k2"), entry("c", t0, "k2"), entry("d", t0, "k3"), entry("e", t0))
	if got := sorted(cancel(t, ix, long, "k1", "k2")); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("Cancel k1 k2: %q, want each of a b c once", got)
	}
	if got := cancel(t, ix, long, "k1", "k2"); len(got) != 0 {
		t.Fatalf("second Cancel: %q, want nothing", got)
	}
	if got := cancel(t, ix, long, "nobody"); len(got) != 0 {
		t.Fatalf("Cancel of an unknown key: %q", got)
	}
	if got := cancel(t, ix, long); len(got) != 0 {
		t.Fatalf("Cancel of no keys: %q", got)
	}
	if n := pending(t, ix); n != 2 {
		t.Fatalf("Pending %d, want 2 (d, e)", n)
	}
	sameEntries(t, due(t, ix, t0, 10, time.Minute), []schedule.Entry{entry("d", t0, "k3"), entry("e", t0)})
	for _, id := range []string{"a", "b", "c"} {
		if _, state := lookup(t, ix, id); state != "" {
			t.Errorf("cancelled %s: state %q, want unknown", id, state)
		}
	}
	// Each cancelled entry comes back with its record, for the
	// scheduler's outcome line (which needs the notification in it).
	add(t, ix, entry("f", t0, "k4"))
	es, err := ix.Cancel(context.Background(), anyTime("k4"), long)
	if err != nil || len(es) != 1 || es[0].ID != "f" || string(es[0].Record) != "record of f" {
		t.Fatalf("Cancel k4: %+v %v, want f with its record", es, err)
	}
}

func testCancelBeforeAdd(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	if got := cancel(t, ix, long, "k"); len(got) != 0 {
		t.Fatalf("Cancel on an empty index: %q", got)
	}
	got := add(t, ix, entry("a", t0, "x", "k"), entry("b", t0, "y"), entry("c", t0, "k"))
	if !slices.Equal(sorted(got), []string{"a", "c"}) {
		t.Fatalf("Add under a tombstone: cancelled %q, want a c", got)
	}
	if n := pending(t, ix); n != 1 {
		t.Fatalf("Pending %d, want 1", n)
	}
	if _, state := lookup(t, ix, "a"); state != "" {
		t.Fatalf("a state %q, want unknown", state)
	}
	// A done id is not reported cancelled: it fired.
	done(t, ix, long, "d")
	if got := add(t, ix, entry("d", t0, "k")); len(got) != 0 {
		t.Fatalf("Add of a done id under a tombstone: cancelled %q", got)
	}
}

func testCancelLeased(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	add(t, ix, entry("a", t0, "k"), entry("b", at(time.Hour), "k"))
	due(t, ix, t0, 10, time.Minute)
	if got := cancel(t, ix, long, "k"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("Cancel: %q, want only the pending b", got)
	}
	if _, state := lookup(t, ix, "a"); state != schedule.StateLeased {
		t.Fatalf("a state %q, want leased", state)
	}
	if n := pending(t, ix); n != 1 {
		t.Fatalf("Pending %d, want 1", n)
	}
	// A firer that died: a comes back after its lease.
	sameEntries(t, due(t, ix, at(time.Minute), 10, time.Minute), []schedule.Entry{entry("a", t0, "k")})
	done(t, ix, long, "a")
	if got := cancel(t, ix, long, "k"); len(got) != 0 {
		t.Fatalf("Cancel after Done: %q", got)
	}
	if got := add(t, ix, entry("e", t0, "k")); !slices.Equal(got, []string{"e"}) {
		t.Fatalf("Add under the tombstone: %q", got)
	}
}

// testCommute applies the same Add, Cancel and Done operations, each
// twice, in different orders: the index ends the same.
func testCommute(t *testing.T, open opener) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	var entries []schedule.Entry
	for i := range 30 {
		var ks []string
		for range rng.IntN(3) {
			ks = append(ks, keys[rng.IntN(len(keys))])
		}
		entries = append(entries, entry(fmt.Sprintf("n%02d", i), at(time.Duration(rng.IntN(100))*time.Second), ks...))
	}
	var ops []indexOp
	ctx := context.Background()
	for i := range entries {
		ops = append(ops, func(ix schedule.Index) error { _, err := ix.Add(ctx, entries[i:i+1]); return err })
	}
	for i := 0; i+3 <= len(entries); i += 7 { // some in batches too
		ops = append(ops, func(ix schedule.Index) error { _, err := ix.Add(ctx, entries[i:i+3]); return err })
	}
	cancelled := []string{"k1", "k4"}
	ops = append(ops,
		func(ix schedule.Index) error { _, err := ix.Cancel(ctx, anyTime(cancelled[:1]...), long); return err },
		func(ix schedule.Index) error { _, err := ix.Cancel(ctx, anyTime(cancelled[1:]...), long); return err },
	)
	doneIDs := []string{"n03", "n08", "n15", "n22", "n29"}
	for _, id := range doneIDs {
		ops = append(ops, func(ix schedule.Index) error { return ix.Done(ctx, []string{id}, long) })
	}
	ops = append(ops, ops...)

	want := remaining(t, entries, 5, 25, func(e schedule.Entry) bool {
		return !slices.Contains(doneIDs, e.ID) && !slices.ContainsFunc(e.Keys, func(k string) bool { return slices.Contains(cancelled, k) })
	})
	inOrders(t, open, rng, ops, func(t *testing.T, ix schedule.Index) {
		if n := pending(t, ix); n != int64(len(want)) {
			t.Fatalf("Pending %d, want %d", n, len(want))
		}
		for _, id := range doneIDs {
			if _, state := lookup(t, ix, id); state != schedule.StateDone {
				t.Errorf("%s state %q, want done", id, state)
			}
		}
		sameEntries(t, due(t, ix, at(time.Hour), 100, time.Minute), want)
	})
}

// remaining is entries that keep, in due order; fewer than lo or more than
// hi fails t, as a mix of operations that tests little.
func remaining(t *testing.T, entries []schedule.Entry, lo, hi int, keep func(schedule.Entry) bool) []schedule.Entry {
	t.Helper()
	var want []schedule.Entry
	for _, e := range entries {
		if keep(e) {
			want = append(want, e)
		}
	}
	slices.SortFunc(want, func(a, b schedule.Entry) int {
		return cmp.Or(a.Due.Compare(b.Due), strings.Compare(a.ID, b.ID))
	})
	if len(want) < lo || len(want) > hi {
		t.Fatalf("the operations leave %d of %d pending: not a useful mix", len(want), len(entries))
	}
	return want
}

// indexOp is one operation testCommute and testCommuteOrdered apply.
type indexOp func(ix schedule.Index) error

// inOrders applies ops to six fresh indexes, each in another order, and
// checks each.
func inOrders(t *testing.T, open opener, rng *rand.Rand, ops []indexOp, check func(t *testing.T, ix schedule.Index)) {
	for order := range 6 {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			ix, _ := fresh(t, open)
			shuffled := slices.Clone(ops)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			for _, o := range shuffled {
				if err := o(ix); err != nil {
					t.Fatal(err)
				}
			}
			check(t, ix)
		})
	}
}

// testExpiry: tombstones and done marks are forgotten after their TTL, by
// the index's clock; a later Cancel or Done only ever extends them.
func testExpiry(t *testing.T, open opener) {
	ix, c := fresh(t, open)
	cancel(t, ix, 200*time.Millisecond, "k")
	cancel(t, ix, time.Hour, "long")
	cancel(t, ix, 50*time.Millisecond, "long") // does not shorten it
	done(t, ix, 200*time.Millisecond, "d")
	done(t, ix, time.Hour, "dl")
	done(t, ix, 50*time.Millisecond, "dl")

	c.Add(199 * time.Millisecond)
	if got := add(t, ix, entry("a", t0, "k")); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("Add before the tombstone expires: cancelled %q", got)
	}
	add(t, ix, entry("d", t0))
	if _, state := lookup(t, ix, "d"); state != schedule.StateDone {
		t.Fatalf("d state %q before its mark expires", state)
	}

	c.Add(time.Millisecond) // 200ms: both expired
	if _, state := lookup(t, ix, "d"); state != "" {
		t.Fatalf("d state %q after its mark expired, want unknown", state)
	}
	if got := add(t, ix, entry("a", t0, "k"), entry("d", t0), entry("b", t0, "long"), entry("dl", t0)); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("Add after expiry: cancelled %q, want only b (its tombstone was extended)", got)
	}
	if n := pending(t, ix); n != 2 {
		t.Fatalf("Pending %d, want 2 (a, d)", n)
	}
	if _, state := lookup(t, ix, "dl"); state != schedule.StateDone {
		t.Fatalf("dl state %q, want done (its mark was extended)", state)
	}
}

func testReady(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	ctx := context.Background()
	missing := func(n int) []int {
		t.Helper()
		m, err := ix.Missing(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := missing(4); !slices.Equal(m, []int{0, 1, 2, 3}) {
		t.Fatalf("Missing on an empty index: %v", m)
	}
	for _, p := range []int{1, 3, 1} {
		if err := ix.MarkReady(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if m := missing(4); !slices.Equal(m, []int{0, 2}) {
		t.Fatalf("Missing: %v, want [0 2]", m)
	}
	if m := missing(2); !slices.Equal(m, []int{0}) {
		t.Fatalf("Missing of 2: %v, want [0]", m)
	}
	if m := missing(0); len(m) != 0 {
		t.Fatalf("Missing of 0: %v", m)
	}
}

func testLock(t *testing.T, open opener) {
	ix, c := fresh(t, open)
	ctx := context.Background()
	lock := func(p int, owner string, ttl time.Duration) bool {
		t.Helper()
		ok, err := ix.Lock(ctx, p, owner, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	unlock := func(p int, owner string) {
		t.Helper()
		if err := ix.Unlock(ctx, p, owner); err != nil {
			t.Fatal(err)
		}
	}
	if !lock(0, "a", long) {
		t.Fatal("a could not take a free lock")
	}
	if lock(0, "b", long) {
		t.Fatal("b took a's lock")
	}
	if !lock(1, "b", long) {
		t.Fatal("b could not take another partition's lock")
	}
	unlock(0, "b") // not b's: nothing happens
	if lock(0, "b", long) {
		t.Fatal("b's Unlock freed a's lock")
	}
	unlock(0, "a")
	if !lock(0, "b", long) {
		t.Fatal("b could not take a lock a gave back")
	}
	// The owner takes it again, with the new TTL; once that ends (by the
	// server's clock in Redis, so this sleeps) another may take it.
	if !lock(0, "b", 250*time.Millisecond) {
		t.Fatal("b could not re-take its own lock")
	}
	if lock(0, "a", long) {
		t.Fatal("a took b's lock")
	}
	c.Add(300 * time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if !lock(0, "a", long) {
		t.Fatal("a could not take an expired lock")
	}
	if _, err := ix.Lock(ctx, 2, "a", 0); err == nil {
		t.Fatal("Lock with no TTL: no error")
	}
	if _, err := ix.Lock(ctx, 2, "", long); err == nil {
		t.Fatal("Lock with no owner: no error")
	}
}

func testPending(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	if n := pending(t, ix); n != 0 {
		t.Fatalf("Pending %d on an empty index", n)
	}
	add(t, ix, entry("a", t0, "k"), entry("b", at(time.Second)), entry("c", at(time.Hour)))
	due(t, ix, t0, 10, time.Minute)
	if n := pending(t, ix); n != 3 {
		t.Fatalf("Pending %d, want 3 (one leased)", n)
	}
	done(t, ix, long, "a")
	if n := pending(t, ix); n != 2 {
		t.Fatalf("Pending %d after Done, want 2", n)
	}
	add(t, ix, entry("d", t0, "x"))
	cancel(t, ix, long, "x")
	if n := pending(t, ix); n != 2 {
		t.Fatalf("Pending %d after Cancel, want 2", n)
	}
}

func testLookup(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	if e, state := lookup(t, ix, "nobody"); state != "" || e.ID != "" {
		t.Fatalf("unknown id: %+v %q", e, state)
	}
	a, b := entry("a", t0, "k1", "k2"), entry("b", at(time.Hour))
	add(t, ix, a, b)
	if e, state := lookup(t, ix, "a"); state != schedule.StatePending || sameEntry(e, a) != "" {
		t.Fatalf("pending: %+v %q", e, state)
	}
	due(t, ix, t0, 10, time.Minute)
	if e, state := lookup(t, ix, "a"); state != schedule.StateLeased || sameEntry(e, a) != "" {
		t.Fatalf("leased: %+v %q", e, state)
	}
	done(t, ix, long, "a")
	if e, state := lookup(t, ix, "a"); state != schedule.StateDone || e.ID != "a" {
		t.Fatalf("done: %+v %q", e, state)
	}
	if e, state := lookup(t, ix, "b"); state != schedule.StatePending || sameEntry(e, b) != "" {
		t.Fatalf("b: %+v %q", e, state)
	}
}

func testLargeBatch(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	rec := bytes.Repeat([]byte("r"), 1024)
	var entries []schedule.Entry
	for i := range 2000 {
		entries = append(entries, schedule.Entry{
			ID:     fmt.Sprintf("n%04d", i),
			Due:    at(time.Duration(i%97) * time.Second),
			Keys:   []string{fmt.Sprintf("g%d", i%50), fmt.Sprintf("id%d", i)},
			Record: append(slices.Clone(rec), fmt.Sprint(i)...),
		})
	}
	if got := add(t, ix, entries...); len(got) != 0 {
		t.Fatalf("Add: cancelled %d", len(got))
	}
	if n := pending(t, ix); n != 2000 {
		t.Fatalf("Pending %d, want 2000", n)
	}
	if got := cancel(t, ix, long, "g7"); len(got) != 40 {
		t.Fatalf("Cancel g7: %d ids, want 40", len(got))
	}
	var want []schedule.Entry
	for _, e := range entries {
		if e.Keys[0] != "g7" {
			want = append(want, e)
		}
	}
	slices.SortFunc(want, func(a, b schedule.Entry) int {
		return cmp.Or(a.Due.Compare(b.Due), strings.Compare(a.ID, b.ID))
	})
	got := due(t, ix, at(time.Hour), 5000, time.Minute)
	sameEntries(t, got, want)
	done(t, ix, long, idsOf(got)...)
	if n := pending(t, ix); n != 0 {
		t.Fatalf("Pending %d after Done, want 0", n)
	}

	// One record of a megabyte, as large as a schedule record gets.
	big := entry("big", t0)
	big.Record = bytes.Repeat([]byte{0, 1, 2, 0xff}, 256<<10)
	add(t, ix, big)
	if e, _ := lookup(t, ix, "big"); sameEntry(e, big) != "" {
		t.Fatal(sameEntry(e, big))
	}
}

// testAnyBytes: cancel keys carry event data, and ids and records are
// opaque, so any bytes must go in and come out unchanged.
func testAnyBytes(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	keys := []string{"gym.class|booking_id=a\nb", `q"uo\te\\`, "ü€", "nul\x00byte", "bad\xffutf8", "[]{}", ""}
	e := schedule.Entry{ID: "id \n\"\xff", Due: at(-time.Hour), Keys: keys, Record: []byte{0, '\n', 0xff, '"'}}
	add(t, ix, e)
	if got, _ := lookup(t, ix, e.ID); sameEntry(got, e) != "" {
		t.Fatal(sameEntry(got, e))
	}
	sameEntries(t, due(t, ix, t0, 10, time.Minute), []schedule.Entry{e})
	add(t, ix, entry("other", t0, "bad\xffutf8"))
	if got := cancel(t, ix, long, "bad\xffutf8"); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("Cancel: %q", got)
	}
	done(t, ix, long, e.ID)
	if _, state := lookup(t, ix, e.ID); state != schedule.StateDone {
		t.Fatalf("state %q", state)
	}
	if _, err := ix.Add(context.Background(), []schedule.Entry{{ID: "", Due: t0}}); err == nil {
		t.Fatal("Add of an entry without an id: no error")
	}
}

// TestRedisLayout checks what the index leaves in Redis: the documented
// keys, and that expired tombstones and done marks are deleted, not only
// ignored.
func TestRedisLayout(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	ctx := context.Background()
	c := &clock{t: t0}
	ix := schedule.NewRedis(client, schedule.RedisOptions{Clock: c.Now})
	add(t, ix, entry("a", at(time.Minute), "k1", "k2"), entry("b", t0))
	cancel(t, ix, time.Second, "k3")
	done(t, ix, time.Second, "x")
	due(t, ix, t0, 10, time.Minute)

	const p = schedule.DefaultPrefix + ":{s}:"
	check := func(got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got %v, want %v", got, want)
		}
	}
	check(client.ZRangeWithScores(ctx, p+"due", 0, -1).Val(), []redis.Z{{Score: float64(at(time.Minute).UnixMilli()), Member: "a"}})
	check(client.ZRangeWithScores(ctx, p+"lease", 0, -1).Val(), []redis.Z{{Score: float64(at(time.Minute).UnixMilli()), Member: "b"}})
	check(client.HGetAll(ctx, p+"rec").Val(), map[string]string{"a": "record of a", "b": "record of b"})
	check(client.HGet(ctx, p+"ek", "a").Val(), `["k1","k2"]`)
	check(client.SMembers(ctx, p+"k:k1").Val(), []string{"a"})
	check(client.ZScore(ctx, p+"tomb", "k3").Val(), float64(at(time.Second).UnixMilli()))
	check(client.ZScore(ctx, p+"done", "x").Val(), float64(at(time.Second).UnixMilli()))

	c.Add(time.Second)
	add(t, ix) // no entries: no call, nothing trimmed
	check(client.ZCard(ctx, p+"tomb").Val(), 1)
	add(t, ix, entry("y", t0))
	check(client.ZCard(ctx, p+"tomb").Val(), 0)
	check(client.ZCard(ctx, p+"done").Val(), 0)

	done(t, ix, long, "a", "b", "y")
	check(client.Exists(ctx, p+"due", p+"lease", p+"rec", p+"at", p+"ek", p+"k:k1", p+"k:k2").Val(), 0)

	// Event times: an entry's in et while it waits, a tombstone's in tat
	// while it lives; both go with what they belong to.
	add(t, ix, since(entry("e", at(time.Hour), "k5"), t0))
	check(client.HGet(ctx, p+"et", "e").Val(), fmt.Sprint(t0.UnixMilli()))
	cancelAt(t, ix, time.Second, by("k6", at(-time.Hour)))
	check(client.HGet(ctx, p+"tat", "k6").Val(), fmt.Sprintf("%d|%d", at(-time.Hour).UnixMilli(), c.Now().Add(time.Second).UnixMilli()))
	done(t, ix, long, "e")
	check(client.HLen(ctx, p+"et").Val(), 0)
	c.Add(2 * time.Second)
	add(t, ix, entry("z", t0))
	check(client.ZCard(ctx, p+"tomb").Val(), 0)
	check(client.HLen(ctx, p+"tat").Val(), 0)

	// Refresh times: in fresh while the entry waits, gone with it. A
	// member whose entry an earlier release's scripts removed (they leave
	// fresh alone) is dropped by the next Stale that reaches it.
	add(t, ix, refreshed(entry("f", at(40*24*time.Hour)), at(time.Hour)))
	check(client.ZScore(ctx, p+"fresh", "f").Val(), float64(at(time.Hour).UnixMilli()))
	done(t, ix, long, "f")
	check(client.ZCard(ctx, p+"fresh").Val(), 0)
	client.ZAdd(ctx, p+"fresh", redis.Z{Score: float64(at(time.Hour).UnixMilli()), Member: "ghost"})
	if got := stale(t, ix, at(2*time.Hour), 10, time.Minute); len(got) != 0 {
		t.Errorf("Stale handed out %q, whose entry is gone", idsOf(got))
	}
	check(client.ZCard(ctx, p+"fresh").Val(), 0)
	// Such a member is not the refresh time of an entry indexed again
	// under its id from a copy that lasts (an outside review's find: Redis
	// kept it, the in-process index had none).
	client.ZAdd(ctx, p+"fresh", redis.Z{Score: float64(at(time.Hour).UnixMilli()), Member: "again"})
	add(t, ix, entry("again", at(40*24*time.Hour)))
	if got := stale(t, ix, at(2*time.Hour), 10, time.Minute); len(got) != 0 {
		t.Errorf("Stale handed out %q, indexed from a copy that lasts", idsOf(got))
	}
}

// TestRedisLostRecord: an entry whose record Redis lost is not fired, and
// the index asks to be rebuilt.
func TestRedisLostRecord(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	ctx := context.Background()
	ix := schedule.NewRedis(client, schedule.RedisOptions{})
	add(t, ix, entry("a", t0, "k"), entry("b", at(time.Second)))
	if err := errors.Join(ix.MarkReady(ctx, 0), ix.MarkReady(ctx, 1)); err != nil {
		t.Fatal(err)
	}
	client.HDel(ctx, schedule.DefaultPrefix+":{s}:rec", "a")
	sameEntries(t, due(t, ix, at(time.Second), 10, time.Minute), []schedule.Entry{entry("b", at(time.Second))})
	if n := pending(t, ix); n != 1 {
		t.Fatalf("Pending %d, want 1", n)
	}
	if m, err := ix.Missing(ctx, 2); err != nil || !slices.Equal(m, []int{0, 1}) {
		t.Fatalf("Missing: %v %v, want every partition", m, err)
	}
	// The rebuild's Add puts it back.
	add(t, ix, entry("a", t0, "k"))
	sameEntries(t, due(t, ix, at(time.Second), 10, time.Minute), []schedule.Entry{entry("a", t0, "k")})
}

// TestRedisCombinesConcurrentCalls: Add and Done calls made at once, as the
// scheduler's consumer makes them one record per key, share script calls,
// and each Add gets back exactly the ids of its own entries that a
// tombstone turned away.
func TestRedisCombinesConcurrentCalls(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	ctx := context.Background()
	ix := schedule.NewRedis(client, schedule.RedisOptions{Prefix: "combine", Clock: func() time.Time { return t0 }})
	if _, err := ix.Cancel(ctx, []schedule.Cancellation{by("gone", at(time.Hour))}, long); err != nil {
		t.Fatal(err)
	}
	scripts := func() int64 { return scriptCalls(t, client) }
	const workers, each = 32, 20
	before := scripts()
	concurrently(workers, each, func(id string, i int) {
		keys := []string{"k" + id}
		if i%3 == 0 {
			keys = append(keys, "gone")
		}
		cancelled, err := ix.Add(ctx, []schedule.Entry{since(entry(id, at(time.Minute), keys...), t0), entry(id+"b", at(time.Minute))})
		if err != nil {
			t.Error(err)
			return
		}
		want := []string(nil)
		if i%3 == 0 {
			want = []string{id}
		}
		if !slices.Equal(cancelled, want) {
			t.Errorf("Add of %s turned away %v, want %v", id, cancelled, want)
		}
		if err := ix.Done(ctx, []string{id + "b"}, long); err != nil {
			t.Error(err)
		}
	})
	calls := scripts() - before
	t.Logf("%d Add and %d Done calls made %d script calls", workers*each, workers*each, calls)
	if calls >= 2*workers*each {
		t.Errorf("%d script calls for %d concurrent Add and Done calls: none combined", calls, 2*workers*each)
	}
	// Every entry not turned away waits; every "b" entry is done.
	if n := pending(t, ix); n != int64(workers*each-workers*((each+2)/3)) {
		t.Errorf("Pending %d, want %d", n, workers*each-workers*((each+2)/3))
	}
}

// concurrently runs do for each of each calls of workers goroutines at
// once, with the call's id ("w<worker>-<i>") and i, and returns when all
// have.
func concurrently(workers, each int, do func(id string, i int)) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				do(fmt.Sprintf("w%d-%d", w, i), i)
			}
		}()
	}
	wg.Wait()
}

// scriptCalls is how many script calls Redis has run.
func scriptCalls(t *testing.T, client redis.UniversalClient) int64 {
	t.Helper()
	s, err := client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "cmdstat_evalsha" || k == "cmdstat_eval" {
			var calls int64
			fmt.Sscanf(v, "calls=%d", &calls)
			n += calls
		}
	}
	return n
}

// TestRedisCombinesConcurrentCancels: concurrent Cancel calls share script
// calls, and each is given back exactly the entries its own cancellations
// removed, an entry under a key several calls cancel to one of them only,
// as when the calls ran one after another.
func TestRedisCombinesConcurrentCancels(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	ctx := context.Background()
	ix := schedule.NewRedis(client, schedule.RedisOptions{Prefix: "combine", Clock: func() time.Time { return t0 }})
	const workers, each = 32, 20
	var es []schedule.Entry
	for w := range workers {
		for i := range each {
			id := fmt.Sprintf("w%d-%d", w, i)
			es = append(es, since(entry(id, at(time.Minute), "k"+id), t0),
				since(entry(id+"-later", at(time.Minute), "k"+id), at(2*time.Hour))) // scheduled after its cancellation
		}
		es = append(es, since(entry(fmt.Sprintf("shared%d", w), at(time.Minute), "shared"), t0))
	}
	for i := 0; i < len(es); i += 500 {
		add(t, ix, es[i:min(i+500, len(es))]...)
	}
	before := scriptCalls(t, client)
	var (
		mu     sync.Mutex
		shared []string
	)
	concurrently(workers, each, func(id string, i int) {
		cs := []schedule.Cancellation{by("k"+id, at(time.Hour))}
		if i == each/2 {
			cs = append(cs, by("shared", at(time.Hour)))
		}
		got, err := ix.Cancel(ctx, cs, long)
		if err != nil {
			t.Error(err)
			return
		}
		var mine []string
		for _, e := range got {
			if strings.HasPrefix(e.ID, "shared") {
				mu.Lock()
				shared = append(shared, e.ID)
				mu.Unlock()
				continue
			}
			mine = append(mine, e.ID)
			if string(e.Record) != "record of "+e.ID {
				t.Errorf("Cancel of %s gave back %s with record %q", id, e.ID, e.Record)
			}
		}
		if !slices.Equal(mine, []string{id}) {
			t.Errorf("Cancel of %s removed %v, want only %s", id, mine, id)
		}
	})
	calls := scriptCalls(t, client) - before
	t.Logf("%d Cancel calls made %d script calls", workers*each, calls)
	if calls >= workers*each {
		t.Errorf("%d script calls for %d concurrent Cancel calls: none combined", calls, workers*each)
	}
	if slices.Sort(shared); len(shared) != workers || len(slices.Compact(slices.Clone(shared))) != workers {
		t.Errorf("the %d entries under the shared key came back %d times: %v", workers, len(shared), shared)
	}
	if n := pending(t, ix); n != int64(workers*each) {
		t.Errorf("Pending %d, want %d (the later ones)", n, workers*each)
	}
}

// TestRedisCombinedCallsGiveUpWithTheirCallers: with Redis down, calls
// whose contexts end return then, combined or not. The outside review
// found callers with 20 ms contexts taking 3.4 s once calls were combined:
// a waiting call waited for the call ahead of it and then ran its own,
// with go-redis's dial retries in full.
func TestRedisCombinedCallsGiveUpWithTheirCallers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	client := redis.NewClient(&redis.Options{Addr: addr})
	defer client.Close()
	ix := schedule.NewRedis(client, schedule.RedisOptions{Prefix: "down", Clock: func() time.Time { return t0 }})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := ix.Add(ctx, []schedule.Entry{entry(fmt.Sprint("a", i), at(time.Minute))})
			if d := time.Since(start); err == nil || d > time.Second {
				t.Errorf("caller %d: %v after %v, want an error within a second", i, err, d)
			}
			start = time.Now()
			err = ix.Done(ctx, []string{fmt.Sprint("a", i)}, long)
			if d := time.Since(start); err == nil || d > time.Second {
				t.Errorf("caller %d's Done: %v after %v, want an error within a second", i, err, d)
			}
			start = time.Now()
			_, err = ix.Cancel(ctx, []schedule.Cancellation{by(fmt.Sprint("k", i), t0)}, long)
			if d := time.Since(start); err == nil || d > time.Second {
				t.Errorf("caller %d's Cancel: %v after %v, want an error within a second", i, err, d)
			}
		}()
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
}

// TestRedisErrorsAsIs: a failure of Redis comes back as go-redis made it,
// for the caller to classify.
func TestRedisErrorsAsIs(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(srv.Options())
	ix := schedule.NewRedis(client, schedule.RedisOptions{})
	_ = client.Close()
	ctx := context.Background()
	_, err := ix.Add(ctx, []schedule.Entry{entry("a", t0)})
	_, err2 := ix.Due(ctx, t0, 1, time.Minute)
	_, err3 := ix.Lock(ctx, 0, "a", time.Minute)
	for _, err := range []error{err, err2, err3, ix.Done(ctx, []string{"a"}, long), ix.MarkReady(ctx, 0)} {
		if !errors.Is(err, redis.ErrClosed) {
			t.Errorf("got %v, want redis.ErrClosed", err)
		}
	}
}

// BenchmarkRedisAddDue is the index's cost per scheduled notification on
// a local redis-server: Add, then Due and Done as the firer calls them, in
// batches (the scheduler's consumer adds one record at a time; a rebuild
// adds 500). Records are 1 KB with one cancel key.
func BenchmarkRedisAddDue(b *testing.B) {
	srv := redistest.Start(b)
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			if err := srv.FlushAll(); err != nil { // the done marks of the last round
				b.Fatal(err)
			}
			ix := schedule.NewRedis(srv.Client(), schedule.RedisOptions{Prefix: "bench:" + b.Name()})
			ctx := context.Background()
			rec := bytes.Repeat([]byte("x"), 1024)
			ids := make([]string, b.N)
			keys := make([][]string, b.N)
			for i := range ids {
				ids[i] = fmt.Sprintf("ntf-%d", i)
				keys[i] = []string{fmt.Sprintf("gym.booking|booking_id=%d", i)}
			}
			now := time.Now()
			es := make([]schedule.Entry, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n += batch {
				k := min(batch, b.N-n)
				for i := range k {
					es[i] = schedule.Entry{ID: ids[n+i], Due: now, Keys: keys[n+i], Record: rec}
				}
				if _, err := ix.Add(ctx, es[:k]); err != nil {
					b.Fatal(err)
				}
				got, err := ix.Due(ctx, now, k, time.Minute)
				if err != nil || len(got) != k {
					b.Fatalf("Due: %d entries, %v", len(got), err)
				}
				if err := ix.Done(ctx, ids[n:n+k], time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// testCancelOrdered: a cancellation withdraws what events at or before it
// scheduled under its key, indexed before or after it, and nothing a later
// event scheduled: before, a class's cancellation tombstoned its key for
// the retention (30 days), so every reminder of a class the gym reinstated,
// or of a booking made again under the same id, was silently withdrawn.
// An entry or a cancellation without a time is ordered as before: covered.
func testCancelOrdered(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	add(t, ix, since(entry("old", at(time.Hour), "k"), at(-time.Hour)), since(entry("new", at(time.Hour), "k"), at(time.Hour)),
		entry("untimed", at(time.Hour), "k"), since(entry("other", at(time.Hour), "j"), at(-time.Hour)))
	if got := sorted(cancelAt(t, ix, long, by("k", t0))); !slices.Equal(got, []string{"old", "untimed"}) {
		t.Fatalf("Cancel k at t0: %q, want old untimed (not new, scheduled after it)", got)
	}
	got := add(t, ix, since(entry("before", at(time.Hour), "k"), at(-30*time.Minute)), since(entry("same", at(time.Hour), "k"), t0),
		since(entry("after", at(time.Hour), "k"), at(30*time.Minute)), entry("untimed2", at(time.Hour), "k"))
	if !slices.Equal(sorted(got), []string{"before", "same", "untimed2"}) {
		t.Fatalf("Add under k's tombstone: cancelled %q, want before same untimed2", got)
	}
	// A later cancellation covers more; an earlier one never less.
	if got := sorted(cancelAt(t, ix, long, by("k", at(2*time.Hour)))); !slices.Equal(got, []string{"after", "new"}) {
		t.Fatalf("Cancel k at t0+2h: %q, want after new", got)
	}
	cancelAt(t, ix, long, by("k", at(-5*time.Hour)))
	if got := add(t, ix, since(entry("n3", t0, "k"), at(90*time.Minute)), since(entry("n4", t0, "k"), at(3*time.Hour))); !slices.Equal(got, []string{"n3"}) {
		t.Fatalf("Add after an earlier cancellation: cancelled %q, want n3 only", got)
	}
	// A cancellation without a time covers everything under its key, and
	// a timed one after it does not narrow that.
	cancel(t, ix, long, "j")
	cancelAt(t, ix, long, by("j", t0))
	if got := add(t, ix, since(entry("j2", t0, "j"), at(10*time.Hour))); !slices.Equal(got, []string{"j2"}) {
		t.Fatalf("Add under an untimed tombstone: cancelled %q, want j2", got)
	}
	sameEntries(t, due(t, ix, at(24*time.Hour), 10, time.Minute), []schedule.Entry{since(entry("n4", t0, "k"), at(3*time.Hour))})
}

// testCommuteOrdered is testCommute with event times on entries and
// cancellations: any order ends with the entries no cancellation covers.
func testCommuteOrdered(t *testing.T, open opener) {
	rng := rand.New(rand.NewPCG(3, 4))
	keys := []string{"k0", "k1", "k2", "k3"}
	var entries []schedule.Entry
	for i := range 40 {
		var ks []string
		for range 1 + rng.IntN(2) {
			ks = append(ks, keys[rng.IntN(len(keys))])
		}
		e := entry(fmt.Sprintf("n%02d", i), at(time.Duration(rng.IntN(100))*time.Second), ks...)
		if rng.IntN(8) > 0 { // a few without a time
			e = since(e, at(time.Duration(rng.IntN(100))*time.Minute))
		}
		entries = append(entries, e)
	}
	cs := []schedule.Cancellation{by("k0", at(30*time.Minute)), by("k0", at(60*time.Minute)), by("k1", at(20*time.Minute)),
		by("k2", at(80*time.Minute)), {Key: "k3"}, by("k3", at(10*time.Minute))}
	ctx := context.Background()
	var ops []indexOp
	for i := range entries {
		ops = append(ops, func(ix schedule.Index) error { _, err := ix.Add(ctx, entries[i:i+1]); return err })
	}
	for i := range cs {
		ops = append(ops, func(ix schedule.Index) error { _, err := ix.Cancel(ctx, cs[i:i+1], long); return err })
	}
	ops = append(ops, func(ix schedule.Index) error { _, err := ix.Cancel(ctx, cs, long); return err })
	ops = append(ops, ops...)

	covered := func(e schedule.Entry) bool {
		for _, c := range cs {
			if slices.Contains(e.Keys, c.Key) && (c.At.IsZero() || e.EventTime.IsZero() || !e.EventTime.After(c.At)) {
				return true
			}
		}
		return false
	}
	want := remaining(t, entries, 5, 35, func(e schedule.Entry) bool { return !covered(e) })
	inOrders(t, open, rng, ops, func(t *testing.T, ix schedule.Index) {
		sameEntries(t, due(t, ix, at(time.Hour), 100, time.Minute), want)
	})
}

// testOrderedExpiry: once a tombstone expires its time is forgotten with
// it, so a new cancellation of the key covers only up to its own time.
func testOrderedExpiry(t *testing.T, open opener) {
	ix, c := fresh(t, open)
	cancelAt(t, ix, 200*time.Millisecond, by("k", at(10*time.Hour)))
	c.Add(time.Second)
	cancelAt(t, ix, long, by("k", at(-time.Hour)))
	if got := add(t, ix, since(entry("a", t0, "k"), t0)); len(got) != 0 {
		t.Fatalf("Add after the later tombstone expired: cancelled %q", got)
	}
}

// TestRedisBesideAnEarlierRelease: during a rolling deploy or after a
// rollback, a scheduler of the release before event times shares the
// index. Its cancellation extends a tombstone without a time, covering
// any event; a time this release recorded for the tombstone's earlier
// expiry must not narrow it (a review's find: an entry scheduled after
// the recorded time was indexed, and sent, under a live untimed
// cancellation).
func TestRedisBesideAnEarlierRelease(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	ctx := context.Background()
	c := &clock{t: t0}
	ix := schedule.NewRedis(client, schedule.RedisOptions{Clock: c.Now})
	const p = schedule.DefaultPrefix + ":{s}:"
	cancelAt(t, ix, time.Hour, by("k", t0))
	// The earlier release's cancellation of k: its script marks the
	// tombstone's expiry and knows nothing else.
	c.Add(time.Minute)
	if err := client.ZAdd(ctx, p+"tomb", redis.Z{Score: float64(at(time.Minute + time.Hour).UnixMilli()), Member: "k"}).Err(); err != nil {
		t.Fatal(err)
	}
	if got := add(t, ix, since(entry("later", at(48*time.Hour), "k"), at(10*time.Minute))); !slices.Equal(got, []string{"later"}) {
		t.Fatalf("Add under a tombstone an earlier release extended: cancelled %q, want later (its cancellation covers any event)", got)
	}
	// And a timed cancellation of this release after it keeps covering any.
	cancelAt(t, ix, time.Hour, by("k", t0))
	if got := add(t, ix, since(entry("later2", at(48*time.Hour), "k"), at(10*time.Minute))); !slices.Equal(got, []string{"later2"}) {
		t.Fatalf("after a timed cancellation: cancelled %q, want later2", got)
	}
}

// refreshed is e read from a copy of its record whose next copy is due at
// r (zero: a copy that lasts until e is due).
func refreshed(e schedule.Entry, r time.Time) schedule.Entry {
	e.Refresh = r
	return e
}

func stale(t *testing.T, ix schedule.Index, now time.Time, limit int, lease time.Duration) []schedule.Entry {
	t.Helper()
	return leased(t, "Stale", ix.Stale, now, limit, lease)
}

// testRefresh: Stale hands out, by refresh time, the entries whose record
// must be written again, leasing each; a later copy moves or clears the
// time; firing, Done and Cancel end it; Stale does not keep Due from
// firing an entry.
func testRefresh(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	a := refreshed(entry("a", at(40*24*time.Hour), "ka"), at(15*24*time.Hour))
	b := refreshed(entry("b", at(50*24*time.Hour)), at(10*24*time.Hour))
	c := entry("c", at(time.Hour)) // lasts
	d := refreshed(entry("d", at(2*time.Minute)), at(time.Minute))
	add(t, ix, a, b, c, d)

	if got := stale(t, ix, at(59*time.Second), 10, time.Minute); len(got) != 0 {
		t.Fatalf("Stale before any refresh time: %q", idsOf(got))
	}
	got := stale(t, ix, at(time.Minute), 10, time.Minute)
	sameEntries(t, got, []schedule.Entry{d})
	if got := stale(t, ix, at(90*time.Second), 10, time.Minute); len(got) != 0 {
		t.Fatalf("Stale within the lease: %q", idsOf(got))
	}
	// Stale's lease is not Due's: d fires when due.
	sameEntries(t, due(t, ix, at(2*time.Minute), 10, time.Minute), []schedule.Entry{d})
	done(t, ix, long, "d")

	got = stale(t, ix, at(30*24*time.Hour), 1, time.Minute) // by refresh time, up to limit
	sameEntries(t, got, []schedule.Entry{b})
	sameEntries(t, stale(t, ix, at(30*24*time.Hour), 10, time.Minute), []schedule.Entry{a})

	// b's new copy: its next refresh is later; a's lasts.
	add(t, ix, refreshed(entry("b", at(50*24*time.Hour)), at(45*24*time.Hour)), entry("a", at(40*24*time.Hour), "ka"))
	if got := stale(t, ix, at(44*24*time.Hour), 10, time.Minute); len(got) != 0 {
		t.Fatalf("Stale after the copies: %q, want none until b's next refresh", idsOf(got))
	}
	sameEntries(t, stale(t, ix, at(45*24*time.Hour), 10, time.Minute), []schedule.Entry{b})

	// Cancelled or done, an entry is not refreshed; a copy read after that
	// adds nothing.
	cancel(t, ix, long, "ka")
	done(t, ix, long, "b")
	add(t, ix, refreshed(entry("b", at(50*24*time.Hour)), at(46*24*time.Hour)), refreshed(entry("a", at(40*24*time.Hour), "ka"), at(46*24*time.Hour)))
	if got := stale(t, ix, at(60*24*time.Hour), 10, time.Minute); len(got) != 0 {
		t.Fatalf("Stale after Done and Cancel: %q", idsOf(got))
	}
	if n := pending(t, ix); n != 1 {
		t.Fatalf("Pending %d, want 1 (c)", n)
	}
}

// testRefreshCommutes: whatever order copies of records arrive in, and
// however often, an entry's refresh time ends the same: none when any copy
// lasts, else the latest copy's.
func testRefreshCommutes(t *testing.T, open opener) {
	rng := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	type want struct {
		id string
		at time.Time // zero: never stale
	}
	var ops []indexOp
	var wants []want
	for i := range 12 {
		id := fmt.Sprintf("r%02d", i)
		base := entry(id, at(90*24*time.Hour))
		copies := 1 + rng.IntN(3)
		lasts := rng.IntN(3) == 0
		var latest time.Time
		for j := range copies {
			r := at(time.Duration(1+i*3+j) * time.Hour)
			if lasts && j == copies-1 {
				r = time.Time{}
			} else {
				latest = r
			}
			e := refreshed(base, r)
			ops = append(ops, func(ix schedule.Index) error { _, err := ix.Add(ctx, []schedule.Entry{e}); return err })
		}
		if lasts {
			latest = time.Time{}
		}
		wants = append(wants, want{id, latest})
	}
	ops = append(ops, ops...)
	ops = append(ops, func(ix schedule.Index) error { // some in one batch
		var es []schedule.Entry
		for i := 0; i < 12; i += 4 {
			es = append(es, refreshed(entry(fmt.Sprintf("r%02d", i), at(90*24*time.Hour)), at(time.Duration(i*3)*time.Hour)))
		}
		_, err := ix.Add(ctx, es)
		return err
	})
	inOrders(t, open, rng, ops, func(t *testing.T, ix schedule.Index) {
		for _, w := range wants {
			if w.at.IsZero() {
				continue
			}
			// Not stale a millisecond before its latest copy's time (the
			// batch's earlier times never raise past it), stale at it.
			for _, e := range stale(t, ix, w.at.Add(-time.Millisecond), 100, 0) {
				if e.ID == w.id {
					t.Errorf("%s stale before %v", w.id, w.at)
				}
			}
		}
		var wantIDs []string
		for _, w := range wants {
			if !w.at.IsZero() {
				wantIDs = append(wantIDs, w.id)
			}
		}
		if got := sorted(idsOf(stale(t, ix, at(100*time.Hour), 100, long))); !slices.Equal(got, sorted(wantIDs)) {
			t.Errorf("stale %q, want %q", got, sorted(wantIDs))
		}
	})
}

// testCancelBeforeEpoch: a cancellation reaching only events before the
// Unix epoch (a producer's unset clock) covers those and untimed ones, not
// later ones, when it is applied and in its tombstone. Redis's scripts
// read a negative time in a tombstone as covering any event, which
// withdrew every later entry under the key (an outside review).
func testCancelBeforeEpoch(t *testing.T, open opener) {
	ix, _ := fresh(t, open)
	before := time.Unix(-200, 0)
	add(t, ix, since(entry("old", at(time.Hour), "k"), before), since(entry("new", at(time.Hour), "k"), t0), entry("untimed", at(time.Hour), "k"))
	if got := sorted(cancelAt(t, ix, long, by("k", time.Unix(-120, 0)))); !slices.Equal(got, []string{"old", "untimed"}) {
		t.Fatalf("Cancel k before the epoch: %q, want old untimed", got)
	}
	if got := add(t, ix, since(entry("later", at(time.Hour), "k"), t0), since(entry("older", at(time.Hour), "k"), before)); !slices.Equal(got, []string{"older"}) {
		t.Fatalf("Add under a tombstone before the epoch: cancelled %q, want older only", got)
	}
}
