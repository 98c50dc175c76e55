package attendance_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/attendance"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/redistest"
)

// stores runs f against every Store: memory and a real redis-server.
func stores(t *testing.T, f func(t *testing.T, s attendance.Store)) {
	t.Run("memory", func(t *testing.T) { f(t, attendance.NewMemory()) })
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		f(t, attendance.NewRedis(srv.Client(), ""))
	})
}

const (
	ttl       = time.Hour
	capacity  = 20
	threshold = 0.8
)

var need = attendance.Need(threshold, capacity) // 16

func add(class, booking string) attendance.Op {
	return attendance.Op{Kind: attendance.Add, ClassID: class, BookingID: booking, Capacity: capacity, Need: need, TTL: ttl}
}

func remove(class, booking string) attendance.Op {
	return attendance.Op{Kind: attendance.Remove, ClassID: class, BookingID: booking, Capacity: capacity, Need: need, TTL: ttl}
}

func closeOp(class string) attendance.Op {
	return attendance.Op{Kind: attendance.Close, ClassID: class, Capacity: capacity, Need: need, TTL: ttl}
}

func bk(i int) string { return "bkg-" + strconv.Itoa(i) }

// apply applies op and fails the test on an error.
func apply(t testing.TB, s attendance.Store, op attendance.Op) attendance.State {
	t.Helper()
	st, err := s.Apply(context.Background(), op)
	if err != nil {
		t.Fatalf("Apply %+v: %v", op, err)
	}
	return st
}

func get(t testing.TB, s attendance.Store, class string) attendance.State {
	t.Helper()
	st, err := s.Get(context.Background(), class)
	if err != nil {
		t.Fatalf("Get %s: %v", class, err)
	}
	return st
}

// check compares the fields that a test names; the others are not looked at.
type want struct {
	confirmed int
	version   int64
	changed   bool
}

func checkState(t *testing.T, what string, got attendance.State, w want) {
	t.Helper()
	if got.Confirmed != w.confirmed || got.Version != w.version || got.Changed != w.changed {
		t.Errorf("%s: confirmed %d version %d changed %v, want %d %d %v (%+v)",
			what, got.Confirmed, got.Version, got.Changed, w.confirmed, w.version, w.changed, got)
	}
}

func TestAddRemoveDuplicates(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		const c = "cls-1"
		checkState(t, "add a", apply(t, s, add(c, "a")), want{1, 1, true})
		checkState(t, "add a again", apply(t, s, add(c, "a")), want{1, 1, false})
		checkState(t, "add b", apply(t, s, add(c, "b")), want{2, 2, true})
		checkState(t, "remove a", apply(t, s, remove(c, "a")), want{1, 3, true})
		checkState(t, "remove a again", apply(t, s, remove(c, "a")), want{1, 3, false})
		checkState(t, "add a after its remove", apply(t, s, add(c, "a")), want{1, 3, false})
		checkState(t, "remove unknown", apply(t, s, remove(c, "z")), want{1, 3, false})
		got := get(t, s, c)
		checkState(t, "get", got, want{1, 3, false})
		if got.ClassID != c || got.Capacity != capacity || got.Closed {
			t.Errorf("get: %+v", got)
		}
		// Classes are independent.
		checkState(t, "other class", apply(t, s, add("cls-2", "a")), want{1, 1, true})
	})
}

func TestGetUnknown(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		if got := get(t, s, "nope"); got != (attendance.State{ClassID: "nope"}) {
			t.Errorf("Get unknown: %+v", got)
		}
		// Marking an unknown class does nothing and creates nothing.
		ctx := context.Background()
		if err := s.MarkPublished(ctx, "nope", 5); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkBusyPublished(ctx, "nope", 1); err != nil {
			t.Fatal(err)
		}
		checkState(t, "first add after marks", apply(t, s, add("nope", "a")), want{1, 1, true})
		if got := get(t, s, "nope"); !got.Unpublished {
			t.Errorf("marks before the class existed hid its first change: %+v", got)
		}
	})
}

// TestCancelBeforeConfirm: a cancellation delivered before its confirmation
// (or a confirmation redelivered after its cancellation) leaves the booking
// out, whichever order the pair arrives in.
func TestCancelBeforeConfirm(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		const c = "cls-tomb"
		checkState(t, "cancel first", apply(t, s, remove(c, "a")), want{0, 0, false})
		checkState(t, "confirm after", apply(t, s, add(c, "a")), want{0, 0, false})
		checkState(t, "confirm again", apply(t, s, add(c, "a")), want{0, 0, false})
		checkState(t, "other booking", apply(t, s, add(c, "b")), want{1, 1, true})
		if got := get(t, s, c); got.Confirmed != 1 || got.Unpublished != true {
			t.Errorf("get: %+v", got)
		}
	})
}

func TestClose(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		const c = "cls-close"
		apply(t, s, add(c, "a"))
		apply(t, s, add(c, "b"))
		st := apply(t, s, closeOp(c))
		checkState(t, "close", st, want{2, 3, true})
		if !st.Closed {
			t.Errorf("close: not closed: %+v", st)
		}
		checkState(t, "close again", apply(t, s, closeOp(c)), want{2, 3, false})
		checkState(t, "add after close", apply(t, s, add(c, "c")), want{2, 3, false})
		checkState(t, "remove after close", apply(t, s, remove(c, "a")), want{2, 3, false})
		late := add(c, "d")
		late.Capacity = 99
		if st := apply(t, s, late); st.Capacity != capacity || !st.Closed {
			t.Errorf("an op after close changed the capacity: %+v", st)
		}
		// Close on a class never seen closes it.
		st = apply(t, s, closeOp("cls-close-first"))
		checkState(t, "close first", st, want{0, 1, true})
		checkState(t, "add after close first", apply(t, s, add("cls-close-first", "a")), want{0, 1, false})

		// A closed class never crosses, even with enough bookings queued.
		const full = "cls-close-full"
		for i := range need - 1 {
			apply(t, s, add(full, bk(i)))
		}
		apply(t, s, closeOp(full))
		if st := apply(t, s, add(full, bk(need))); st.Crossings != 0 || st.PendingBusy != 0 || st.Confirmed != need-1 {
			t.Errorf("closed class crossed: %+v", st)
		}
	})
}

func TestCapacity(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		const c = "cls-cap"
		op := add(c, "a")
		op.Capacity = 10
		if st := apply(t, s, op); st.Capacity != 10 {
			t.Errorf("capacity %d, want 10", st.Capacity)
		}
		op = add(c, "a") // a duplicate still carries the latest capacity
		op.Capacity = 12
		if st := apply(t, s, op); st.Capacity != 12 || st.Changed {
			t.Errorf("duplicate with capacity 12: %+v", st)
		}
		op = add(c, "b")
		op.Capacity = 0
		if st := apply(t, s, op); st.Capacity != 12 {
			t.Errorf("capacity 0 replaced the stored one: %+v", st)
		}
	})
}

// TestBusy: capacity 20, threshold 0.8. The 16th booking crosses, once;
// duplicates and a replay of everything cross nothing and change nothing;
// falling to 15 re-arms and the next 16th booking is crossing 2.
func TestBusy(t *testing.T) {
	if need != 16 {
		t.Fatalf("Need(0.8, 20) = %d", need)
	}
	stores(t, func(t *testing.T, s attendance.Store) {
		const c = "cls-busy"
		var ops []attendance.Op
		do := func(op attendance.Op) attendance.State {
			t.Helper()
			ops = append(ops, op)
			return apply(t, s, op)
		}
		for i := 1; i < need; i++ {
			if st := do(add(c, bk(i))); st.Crossings != 0 || st.PendingBusy != 0 {
				t.Fatalf("booking %d crossed: %+v", i, st)
			}
		}
		st := do(add(c, bk(need)))
		if st.Confirmed != 16 || st.Crossings != 1 || st.PendingBusy != 1 || !st.Changed {
			t.Fatalf("16th booking: %+v, want crossing 1", st)
		}
		for i := need + 1; i <= capacity; i++ {
			if st := do(add(c, bk(i))); st.Crossings != 1 {
				t.Fatalf("booking %d crossed again: %+v", i, st)
			}
		}
		before := get(t, s, c)

		// Duplicates, then the whole sequence again.
		for _, op := range append([]attendance.Op{ops[need-1], ops[0], ops[len(ops)-1]}, ops...) {
			if st := apply(t, s, op); st.Changed || st.Crossings != 1 || st.Version != before.Version {
				t.Fatalf("replayed %+v: %+v", op, st)
			}
		}
		if after := get(t, s, c); after != before {
			t.Fatalf("replay changed the class: %+v, was %+v", after, before)
		}

		// Down to 16: still at need, still disarmed.
		for i := capacity; i > need; i-- {
			if st := do(remove(c, bk(i))); st.Crossings != 1 {
				t.Fatalf("remove %d: %+v", i, st)
			}
		}
		// 15 re-arms; 16 again crosses, as crossing 2.
		if st := do(remove(c, bk(need))); st.Confirmed != 15 || st.Crossings != 1 {
			t.Fatalf("down to 15: %+v", st)
		}
		st = do(add(c, "bkg-new-16"))
		if st.Confirmed != 16 || st.Crossings != 2 || st.PendingBusy != 2 {
			t.Fatalf("16 again: %+v, want crossing 2", st)
		}
		// Replaying everything once more changes nothing: removed bookings
		// stay removed, and no crossing is counted.
		for _, op := range ops {
			if st := apply(t, s, op); st.Changed || st.Crossings != 2 || st.Confirmed != 16 {
				t.Fatalf("second replay %+v: %+v", op, st)
			}
		}
	})
}

// TestBusyDisabled: Need 0 turns busy detection off.
func TestBusyDisabled(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		for i := range capacity {
			op := add("cls-nobusy", bk(i))
			op.Need = 0
			if st := apply(t, s, op); st.Crossings != 0 || st.PendingBusy != 0 {
				t.Fatalf("crossed with need 0: %+v", st)
			}
		}
	})
}

// TestOutbox: what has not been marked published is reported by every
// result, including redeliveries that change nothing, until it is marked.
func TestOutbox(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		ctx := context.Background()
		const c = "cls-outbox"
		st := apply(t, s, add(c, "a"))
		if !st.Unpublished || st.Version != 1 {
			t.Fatalf("first add: %+v", st)
		}
		// Crash before publishing: the redelivery reports it again.
		if st := apply(t, s, add(c, "a")); st.Changed || !st.Unpublished {
			t.Fatalf("redelivery: %+v", st)
		}
		if err := s.MarkPublished(ctx, c, 1); err != nil {
			t.Fatal(err)
		}
		if st := apply(t, s, add(c, "a")); st.Unpublished {
			t.Fatalf("after MarkPublished(1): %+v", st)
		}
		st = apply(t, s, add(c, "b")) // version 2
		if !st.Unpublished {
			t.Fatalf("version 2: %+v", st)
		}
		// A stale mark does not lower; a mark beyond the current version
		// goes no further than it.
		if err := s.MarkPublished(ctx, c, 1); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, c); !got.Unpublished {
			t.Fatalf("stale MarkPublished hid version 2: %+v", got)
		}
		if err := s.MarkPublished(ctx, c, 100); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, c); got.Unpublished {
			t.Fatalf("after MarkPublished(100): %+v", got)
		}
		if st := apply(t, s, add(c, "c")); !st.Unpublished || st.Version != 3 {
			t.Fatalf("version 3 after MarkPublished(100): %+v", st)
		}

		// Busy: pending until MarkBusyPublished of that crossing.
		for i := range need {
			st = apply(t, s, add(c, bk(i)))
		}
		if st.PendingBusy != 1 {
			t.Fatalf("crossing: %+v", st)
		}
		if st := apply(t, s, add(c, bk(0))); st.Changed || st.PendingBusy != 1 {
			t.Fatalf("redelivery after crossing: %+v", st)
		}
		if err := s.MarkBusyPublished(ctx, c, 7); err != nil { // not the pending one
			t.Fatal(err)
		}
		if got := get(t, s, c); got.PendingBusy != 1 {
			t.Fatalf("MarkBusyPublished(7) cleared crossing 1: %+v", got)
		}
		if err := s.MarkBusyPublished(ctx, c, 1); err != nil {
			t.Fatal(err)
		}
		if st := apply(t, s, add(c, bk(0))); st.PendingBusy != 0 || st.Crossings != 1 {
			t.Fatalf("after MarkBusyPublished(1): %+v", st)
		}
		// Crossing 2 is pending on its own; marking crossing 1 again is
		// stale and leaves it.
		for i := range 20 {
			apply(t, s, remove(c, bk(i)))
		}
		for i := 100; i < 100+need; i++ {
			st = apply(t, s, add(c, bk(i)))
		}
		if st.PendingBusy != 2 || st.Crossings != 2 {
			t.Fatalf("second crossing: %+v", st)
		}
		if err := s.MarkBusyPublished(ctx, c, 1); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, c); got.PendingBusy != 2 || !got.Unpublished {
			t.Fatalf("stale MarkBusyPublished: %+v", got)
		}
		if err := s.MarkPublished(ctx, c, st.Version); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkBusyPublished(ctx, c, 2); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, c); got.PendingBusy != 0 || got.Unpublished {
			t.Fatalf("all published: %+v", got)
		}
	})
}

// TestTTL: a class is forgotten TTL after its last op, and each op sets
// the TTL afresh.
func TestTTL(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		const c = "cls-ttl"
		apply(t, s, add(c, "a"))
		apply(t, s, remove(c, "b")) // a tombstone too
		short := add(c, "c")
		short.TTL = 50 * time.Millisecond
		apply(t, s, short)
		time.Sleep(150 * time.Millisecond)
		if got := get(t, s, c); got != (attendance.State{ClassID: c}) {
			t.Fatalf("after its TTL: %+v", got)
		}
		// Everything went, the tombstone included.
		checkState(t, "b after expiry", apply(t, s, add(c, "b")), want{1, 1, true})

		// A sub-millisecond TTL is rounded up, not down to "delete now".
		tiny := add("cls-tiny", "a")
		tiny.TTL = time.Nanosecond
		checkState(t, "tiny ttl", apply(t, s, tiny), want{1, 1, true})
	})
}

func TestInvalid(t *testing.T) {
	long := string(make([]byte, attendance.MaxIDLen+1))
	bad := map[string]attendance.Op{
		"zero kind":          {ClassID: "c", BookingID: "b", TTL: ttl},
		"unknown kind":       {Kind: 9, ClassID: "c", BookingID: "b", TTL: ttl},
		"no class":           {Kind: attendance.Add, BookingID: "b", TTL: ttl},
		"long class":         {Kind: attendance.Add, ClassID: long, BookingID: "b", TTL: ttl},
		"add without id":     {Kind: attendance.Add, ClassID: "c", TTL: ttl},
		"remove without id":  {Kind: attendance.Remove, ClassID: "c", TTL: ttl},
		"long booking":       {Kind: attendance.Remove, ClassID: "c", BookingID: long, TTL: ttl},
		"no ttl":             {Kind: attendance.Add, ClassID: "c", BookingID: "b"},
		"negative ttl":       {Kind: attendance.Close, ClassID: "c", TTL: -time.Second},
		"negative capacity":  {Kind: attendance.Add, ClassID: "c", BookingID: "b", Capacity: -1, TTL: ttl},
		"negative need":      {Kind: attendance.Add, ClassID: "c", BookingID: "b", Need: -1, TTL: ttl},
		"close without ttl":  {Kind: attendance.Close, ClassID: "c"},
		"close with no name": {Kind: attendance.Close, TTL: ttl},
	}
	checkErr := func(t *testing.T, name string, err error) {
		t.Helper()
		if !errors.Is(err, attendance.ErrInvalid) || failure.ClassOf(err) != failure.Permanent {
			t.Errorf("%s: %v (class %v), want permanent ErrInvalid", name, err, failure.ClassOf(err))
		}
	}
	stores(t, func(t *testing.T, s attendance.Store) {
		ctx := context.Background()
		for name, op := range bad {
			_, err := s.Apply(ctx, op)
			checkErr(t, name, err)
		}
		_, err := s.Get(ctx, "")
		checkErr(t, "get empty", err)
		checkErr(t, "mark busy long", s.MarkBusyPublished(ctx, long, 1))
		checkErr(t, "mark empty", s.MarkPublished(ctx, "", 1))
		if got := get(t, s, "c"); got != (attendance.State{ClassID: "c"}) {
			t.Errorf("an invalid op left state: %+v", got)
		}
	})
	// Against a Redis that does not exist the errors are still ErrInvalid:
	// validation comes before any command.
	dead := redis.NewClient(&redis.Options{Network: "unix", Addr: t.TempDir() + "/none.sock", MaxRetries: -1})
	defer dead.Close()
	s := attendance.NewRedis(dead, "")
	for name, op := range bad {
		_, err := s.Apply(context.Background(), op)
		checkErr(t, "dead redis: "+name, err)
	}
	// And a valid op against it is a retryable failure.
	if _, err := s.Apply(context.Background(), add("c", "b")); err == nil || !failure.IsRetryable(err) {
		t.Errorf("dead redis: %v, want retryable", err)
	}
}

func TestRedisWritesNothingInvalid(t *testing.T) {
	srv := redistest.Start(t)
	s := attendance.NewRedis(srv.Client(), "")
	ctx := context.Background()
	_, _ = s.Apply(ctx, attendance.Op{Kind: attendance.Add, ClassID: "c", TTL: ttl})
	_ = s.MarkPublished(ctx, "c", 3)
	_ = s.MarkBusyPublished(ctx, "c", 3)
	if n, err := srv.Client().DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE %d %v, want 0", n, err)
	}
	apply(t, s, add("c", "b"))
	apply(t, s, remove("c", "z"))
	keys, err := srv.Client().Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if d, err := srv.Client().PTTL(ctx, k).Result(); err != nil || d <= 0 {
			t.Errorf("key %s has ttl %v %v", k, d, err)
		}
	}
	if len(keys) != 3 {
		t.Errorf("keys %q, want meta, booked and tombstones", keys)
	}
}

// TestAwkwardIDs: ids holding the characters that shape Redis hash tags
// stay apart and keep each class in one slot (the cluster test runs them
// too).
func TestAwkwardIDs(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		ids := awkwardIDs()
		for i, id := range ids {
			for j := 0; j <= i; j++ {
				apply(t, s, add(id, bk(j)))
			}
		}
		for i, id := range ids {
			if got := get(t, s, id); got.Confirmed != i+1 {
				t.Errorf("class %q: %d bookings, want %d", id, got.Confirmed, i+1)
			}
		}
	})
}

func awkwardIDs() []string {
	return []string{"}x", "%7Dx", "a}b", "a%7Db", "{y}", "%7By%7D", "{}", "%", "%25", "plain"}
}

// TestConcurrent: 8 goroutines apply the same 200 ops (with duplicates),
// each in its own shuffled order, to one store. However they interleave,
// the classes end the same, each change is reported Changed exactly once,
// and exactly the expected crossings happen.
func TestConcurrent(t *testing.T) {
	// Class "full": 20 distinct bookings, only adds: one crossing.
	// Class "churn": 12 bookings added, 6 of them and 3 others cancelled:
	// never 16 at once, so no crossing; 6 remain whatever the order,
	// since the tombstones make each add/remove pair commute.
	var ops []attendance.Op
	for i := range 20 {
		ops = append(ops, add("full", bk(i)))
	}
	for i := range 12 {
		ops = append(ops, add("churn", bk(i)))
	}
	for i := 6; i < 15; i++ {
		ops = append(ops, remove("churn", bk(i)))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for len(ops) < 200 {
		ops = append(ops, ops[r.IntN(41)])
	}
	stores(t, func(t *testing.T, s attendance.Store) {
		ctx := context.Background()
		var wg sync.WaitGroup
		var mu sync.Mutex
		changes := map[string]int64{}
		for g := range 8 {
			mine := append([]attendance.Op(nil), ops...)
			rand.New(rand.NewPCG(uint64(g), 7)).Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			wg.Go(func() {
				for _, op := range mine {
					st, err := s.Apply(ctx, op)
					if err != nil {
						t.Error(err)
						return
					}
					if st.Changed {
						mu.Lock()
						changes[op.ClassID]++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		full := get(t, s, "full")
		if full.Confirmed != 20 || full.Version != 20 || full.Crossings != 1 || full.PendingBusy != 1 {
			t.Errorf("full: %+v", full)
		}
		churn := get(t, s, "churn")
		if churn.Confirmed != 6 || churn.Crossings != 0 || churn.PendingBusy != 0 {
			t.Errorf("churn: %+v", churn)
		}
		for _, st := range []attendance.State{full, churn} {
			if changes[st.ClassID] != st.Version {
				t.Errorf("%s: %d results reported Changed, version %d", st.ClassID, changes[st.ClassID], st.Version)
			}
		}
	})
}

// TestRedisOnCluster: every script names one class's keys, which share a
// slot, so Apply works through a cluster client for classes spread over
// every master, concurrently.
func TestRedisOnCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	s := attendance.NewRedis(c.Client(), "")
	ctx := context.Background()

	classes := awkwardIDs()
	for i := range 40 {
		classes = append(classes, fmt.Sprintf("class-%d", i))
	}
	masters := map[string]bool{}
	for i := range 40 {
		masters[c.MasterOf(fmt.Sprintf("{class-%d}", i))] = true
	}
	if len(masters) != 3 {
		t.Fatalf("classes on %d masters, want 3", len(masters))
	}
	var wg sync.WaitGroup
	for _, class := range classes {
		wg.Go(func() {
			for i := range capacity {
				if _, err := s.Apply(ctx, add(class, bk(i))); err != nil {
					t.Errorf("Apply %s: %v", class, err)
					return
				}
			}
			for i := range 5 {
				if _, err := s.Apply(ctx, remove(class, bk(i))); err != nil {
					t.Errorf("Apply %s: %v", class, err)
					return
				}
			}
			st, err := s.Get(ctx, class)
			if err != nil || st.Confirmed != 15 || st.Crossings != 1 || st.PendingBusy != 1 || st.Version != 25 {
				t.Errorf("Get %s: %+v %v", class, st, err)
				return
			}
			if err := s.MarkBusyPublished(ctx, class, 1); err != nil {
				t.Errorf("MarkBusyPublished %s: %v", class, err)
			}
			if err := s.MarkPublished(ctx, class, st.Version); err != nil {
				t.Errorf("MarkPublished %s: %v", class, err)
			}
			st, err = s.Apply(ctx, closeOp(class))
			if err != nil || !st.Closed || st.PendingBusy != 0 || !st.Unpublished || st.Version != 26 {
				t.Errorf("close %s: %+v %v", class, st, err)
			}
		})
	}
	wg.Wait()
}

func TestNeed(t *testing.T) {
	tests := []struct {
		threshold float64
		capacity  int
		want      int
	}{
		{0.8, 20, 16},
		{0.8, 21, 17},
		{1.0, 20, 20},
		{0.75, 4, 3},
		{0, 20, 0},
		{0.1, 30, 3}, // 3.0000000000000004 in float64
		{0.7, 10, 7}, // 7.000000000000001 in float64
		{0.3, 10, 3},
		{0.9, 10, 9},
		{1.0 / 3, 3, 1},
		{0.5, 1, 1},
		{0.001, 5, 1},
		{0.8, 0, 0},
		{0.8, -5, 0},
		{-0.5, 20, 0},
		{1.01, 20, 0},
		{math.NaN(), 20, 0},
		{math.Inf(1), 20, 0},
		{0.8, math.MaxInt32, 1717986918}, // ceil(4 × 2147483647 / 5), no overflow
	}
	for _, tt := range tests {
		if got := attendance.Need(tt.threshold, tt.capacity); got != tt.want {
			t.Errorf("Need(%v, %d) = %d, want %d", tt.threshold, tt.capacity, got, tt.want)
		}
	}
}

// BenchmarkApplyRedis is the cost of one booking event: an Add to one of
// 1000 classes, from parallel goroutines, against a local redis-server.
func BenchmarkApplyRedis(b *testing.B) {
	srv := redistest.Start(b)
	s := attendance.NewRedis(srv.Client(), "")
	ctx := context.Background()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 0))
		for pb.Next() {
			op := add("class-"+strconv.Itoa(r.IntN(1000)), bk(r.IntN(30)))
			if _, err := s.Apply(ctx, op); err != nil {
				b.Fatal(err)
			}
		}
	})
}
