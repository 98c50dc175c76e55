package dedupe_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/redistest"
)

// The behaviour of a Store is one table, run against every implementation,
// so Memory (herald dev, unit tests elsewhere) cannot drift from Redis.

// long is a lease no test outlives.
const long = time.Minute

// fakeClock is an injectable clock that only moves when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness is one fresh, empty store and the means to let a lease lapse in it.
type harness struct {
	store dedupe.Store
	clock *fakeClock
	// shortLease is a lease that expireLease can make run out quickly.
	shortLease time.Duration
	// expireLease returns once id's lease (at most shortLease) has run out.
	expireLease func(t *testing.T, id string)
	// duplicateSends reads the store's duplicate-send counter.
	duplicateSends func() uint64
}

type impl struct {
	name string
	new  func(t *testing.T) harness
}

// impls returns both implementations; the Redis one uses srv, emptied for
// each harness.
func impls(srv *redistest.Server) []impl {
	return []impl{
		{"memory", func(t *testing.T) harness {
			clock := newFakeClock()
			m := dedupe.NewMemory(dedupe.Options{Clock: clock.Now})
			t.Cleanup(func() { _ = m.Close() })
			return harness{
				store:      m,
				clock:      clock,
				shortLease: 30 * time.Second,
				expireLease: func(t *testing.T, id string) {
					clock.Advance(30 * time.Second)
				},
				duplicateSends: m.DuplicateSends,
			}
		}},
		{"redis", func(t *testing.T) harness {
			if err := srv.FlushAll(); err != nil {
				t.Fatal(err)
			}
			clock := newFakeClock()
			r := dedupe.NewRedis(srv.Client(), dedupe.Options{Clock: clock.Now})
			t.Cleanup(func() { _ = r.Close() })
			return harness{
				store:      r,
				clock:      clock,
				shortLease: 20 * time.Millisecond,
				expireLease: func(t *testing.T, id string) {
					waitNotInFlight(t, r, id)
				},
				duplicateSends: r.DuplicateSends,
			}
		}},
	}
}

// waitNotInFlight waits for Redis itself to expire id's lease: it polls the
// key, each time waiting out the remaining lease Redis reports, and gives up
// after a bound far beyond any lease a test uses.
func waitNotInFlight(t *testing.T, s dedupe.Store, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := s.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
		if c.State != dedupe.StateInFlight {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease on %s still held after 5s: %+v", id, c)
		}
		time.Sleep(max(c.LeaseLeft, time.Millisecond)) // the server's clock decides
	}
}

func mustClaim(t *testing.T, s dedupe.Store, id, owner string, lease time.Duration) dedupe.Claim {
	t.Helper()
	c, err := s.Claim(context.Background(), id, owner, lease)
	if err != nil {
		t.Fatalf("Claim(%s, %s): %v", id, owner, err)
	}
	return c
}

func mustGet(t *testing.T, s dedupe.Store, id string) dedupe.Claim {
	t.Helper()
	c, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantAcquired(t *testing.T, c dedupe.Claim, owner string) {
	t.Helper()
	if !c.Acquired || c.State != dedupe.StateInFlight || c.Owner != owner {
		t.Fatalf("claim = %+v, want acquired in flight by %s", c, owner)
	}
}

func wantFound(t *testing.T, c dedupe.Claim, state dedupe.State, owner string) {
	t.Helper()
	if c.Acquired || c.State != state || c.Owner != owner {
		t.Fatalf("claim = %+v, want not acquired, %q owned by %q", c, state, owner)
	}
}

var storeCases = []struct {
	name string
	run  func(t *testing.T, h harness)
}{
	{"claim acquires a new id", func(t *testing.T, h harness) {
		c := mustClaim(t, h.store, "n1", "a", long)
		wantAcquired(t, c, "a")
		if c.LeaseLeft != long {
			t.Fatalf("LeaseLeft = %v, want %v", c.LeaseLeft, long)
		}
		g := mustGet(t, h.store, "n1")
		wantFound(t, g, dedupe.StateInFlight, "a")
		if g.LeaseLeft <= 0 || g.LeaseLeft > long {
			t.Fatalf("Get LeaseLeft = %v, want in (0, %v]", g.LeaseLeft, long)
		}
	}},
	{"claim by another owner finds it in flight", func(t *testing.T, h harness) {
		mustClaim(t, h.store, "n1", "a", long)
		c := mustClaim(t, h.store, "n1", "b", long)
		wantFound(t, c, dedupe.StateInFlight, "a")
		if c.LeaseLeft <= 0 || c.LeaseLeft > long {
			t.Fatalf("LeaseLeft = %v, want in (0, %v]", c.LeaseLeft, long)
		}
	}},
	{"claim is re-entrant for its owner and extends the lease", func(t *testing.T, h harness) {
		mustClaim(t, h.store, "n1", "a", 10*time.Second)
		wantAcquired(t, mustClaim(t, h.store, "n1", "a", long), "a")
		if left := mustGet(t, h.store, "n1").LeaseLeft; left <= 10*time.Second {
			t.Fatalf("LeaseLeft after re-entrant claim = %v, want > 10s", left)
		}
	}},
	{"sent is deduplicated and carries the provider id", func(t *testing.T, h harness) {
		mustClaim(t, h.store, "n1", "a", long)
		must(t, h.store.MarkSent(context.Background(), "n1", "a", "pm-1"))
		for _, owner := range []string{"b", "a"} { // not even its owner claims it again
			c := mustClaim(t, h.store, "n1", owner, long)
			wantFound(t, c, dedupe.StateSent, "a")
			if c.ProviderMessageID != "pm-1" || c.LeaseLeft != 0 {
				t.Fatalf("claim by %s = %+v, want provider id pm-1 and no lease", owner, c)
			}
		}
	}},
	{"failed is final and carries the reason", func(t *testing.T, h harness) {
		mustClaim(t, h.store, "n1", "a", long)
		must(t, h.store.MarkFailed(context.Background(), "n1", "a", "invalid_address"))
		c := mustClaim(t, h.store, "n1", "b", long)
		wantFound(t, c, dedupe.StateFailed, "a")
		if c.Reason != "invalid_address" {
			t.Fatalf("Reason = %q, want invalid_address", c.Reason)
		}
	}},
	{"release lets another owner claim", func(t *testing.T, h harness) {
		mustClaim(t, h.store, "n1", "a", long)
		must(t, h.store.Release(context.Background(), "n1", "a"))
		if g := mustGet(t, h.store, "n1"); g != (dedupe.Claim{}) {
			t.Fatalf("Get after Release = %+v, want empty", g)
		}
		wantAcquired(t, mustClaim(t, h.store, "n1", "b", long), "b")
	}},
	{"release by another owner does nothing", func(t *testing.T, h harness) {
		mustClaim(t, h.store, "n1", "a", long)
		must(t, h.store.Release(context.Background(), "n1", "b"))
		wantFound(t, mustClaim(t, h.store, "n1", "b", long), dedupe.StateInFlight, "a")
	}},
	{"release leaves sent and failed keys alone", func(t *testing.T, h harness) {
		ctx := context.Background()
		mustClaim(t, h.store, "sent", "a", long)
		must(t, h.store.MarkSent(ctx, "sent", "a", "pm-1"))
		mustClaim(t, h.store, "failed", "a", long)
		must(t, h.store.MarkFailed(ctx, "failed", "a", "rejected"))
		must(t, h.store.Release(ctx, "sent", "a"))
		must(t, h.store.Release(ctx, "failed", "a"))
		wantFound(t, mustGet(t, h.store, "sent"), dedupe.StateSent, "a")
		wantFound(t, mustGet(t, h.store, "failed"), dedupe.StateFailed, "a")
	}},
	{"lease expiry lets another owner claim", func(t *testing.T, h harness) {
		wantAcquired(t, mustClaim(t, h.store, "n1", "a", h.shortLease), "a")
		h.expireLease(t, "n1")
		wantAcquired(t, mustClaim(t, h.store, "n1", "b", long), "b")
	}},
	{"mark sent after the lease was lost records sent and is never downgraded", func(t *testing.T, h harness) {
		ctx := context.Background()
		mustClaim(t, h.store, "n1", "a", h.shortLease)
		h.expireLease(t, "n1")
		mustClaim(t, h.store, "n1", "b", long)

		// a's provider accepted the message: that is recorded even though
		// b holds the lease now.
		must(t, h.store.MarkSent(ctx, "n1", "a", "pm-a"))
		// b sent it too (the admitted duplicate): counted, first id kept.
		must(t, h.store.MarkSent(ctx, "n1", "b", "pm-b"))
		must(t, h.store.MarkFailed(ctx, "n1", "b", "rejected"))
		must(t, h.store.Release(ctx, "n1", "b"))

		g := mustGet(t, h.store, "n1")
		wantFound(t, g, dedupe.StateSent, "a")
		if g.ProviderMessageID != "pm-a" || g.Reason != "" {
			t.Fatalf("Get = %+v, want provider id pm-a and no reason", g)
		}
		if n := h.duplicateSends(); n != 1 {
			t.Fatalf("DuplicateSends = %d, want 1", n)
		}
	}},
	{"mark sent with no key left records sent", func(t *testing.T, h harness) {
		mustClaim(t, h.store, "n1", "a", h.shortLease)
		h.expireLease(t, "n1")
		must(t, h.store.MarkSent(context.Background(), "n1", "a", "pm-a"))
		wantFound(t, mustGet(t, h.store, "n1"), dedupe.StateSent, "a")
	}},
	{"mark sent repeated by its owner is not a duplicate", func(t *testing.T, h harness) {
		ctx := context.Background()
		mustClaim(t, h.store, "n1", "a", long)
		must(t, h.store.MarkSent(ctx, "n1", "a", "pm-a"))
		must(t, h.store.MarkSent(ctx, "n1", "a", "pm-a")) // a retried call
		if n := h.duplicateSends(); n != 0 {
			t.Fatalf("DuplicateSends = %d, want 0", n)
		}
	}},
	{"mark failed does not overwrite sent", func(t *testing.T, h harness) {
		ctx := context.Background()
		mustClaim(t, h.store, "n1", "a", long)
		must(t, h.store.MarkSent(ctx, "n1", "a", "pm-1"))
		must(t, h.store.MarkFailed(ctx, "n1", "a", "rejected"))
		g := mustGet(t, h.store, "n1")
		wantFound(t, g, dedupe.StateSent, "a")
		if g.ProviderMessageID != "pm-1" || g.Reason != "" {
			t.Fatalf("Get = %+v, want sent with pm-1 and no reason", g)
		}
	}},
	{"mark sent overrides failed", func(t *testing.T, h harness) {
		ctx := context.Background()
		mustClaim(t, h.store, "n1", "a", long)
		must(t, h.store.MarkFailed(ctx, "n1", "a", "rejected"))
		must(t, h.store.MarkSent(ctx, "n1", "b", "pm-b")) // it went out after all
		g := mustGet(t, h.store, "n1")
		wantFound(t, g, dedupe.StateSent, "b")
		if g.ProviderMessageID != "pm-b" || g.Reason != "" {
			t.Fatalf("Get = %+v, want sent with pm-b and no reason", g)
		}
	}},
	{"get of an unknown id is empty", func(t *testing.T, h harness) {
		if g := mustGet(t, h.store, "nobody"); g != (dedupe.Claim{}) {
			t.Fatalf("Get = %+v, want empty", g)
		}
	}},
	{"ids are independent", func(t *testing.T, h harness) {
		mustClaim(t, h.store, "n1", "a", long)
		wantAcquired(t, mustClaim(t, h.store, "n2", "b", long), "b")
	}},
	{"invalid arguments are permanent errors", func(t *testing.T, h harness) {
		ctx := context.Background()
		for name, call := range map[string]func() error{
			"claim empty id":      func() error { _, err := h.store.Claim(ctx, "", "a", long); return err },
			"claim empty owner":   func() error { _, err := h.store.Claim(ctx, "n1", "", long); return err },
			"claim zero lease":    func() error { _, err := h.store.Claim(ctx, "n1", "a", 0); return err },
			"claim sub-ms lease":  func() error { _, err := h.store.Claim(ctx, "n1", "a", time.Microsecond); return err },
			"mark sent no owner":  func() error { return h.store.MarkSent(ctx, "n1", "", "pm") },
			"mark failed no id":   func() error { return h.store.MarkFailed(ctx, "", "a", "x") },
			"release empty owner": func() error { return h.store.Release(ctx, "n1", "") },
			"get empty id":        func() error { _, err := h.store.Get(ctx, ""); return err },
		} {
			err := call()
			if failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != failure.ReasonInvalid {
				t.Errorf("%s: error = %v, want permanent %s", name, err, failure.ReasonInvalid)
			}
		}
		if g := mustGet(t, h.store, "n1"); g != (dedupe.Claim{}) {
			t.Fatalf("Get after invalid calls = %+v, want empty", g)
		}
	}},
	{"a done context is a retryable error and changes nothing", func(t *testing.T, h harness) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := h.store.Claim(ctx, "n1", "a", long)
		if !failure.IsRetryable(err) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Claim with cancelled ctx: error = %v, want retryable wrapping context.Canceled", err)
		}
		if err := h.store.MarkSent(ctx, "n1", "a", "pm"); !failure.IsRetryable(err) {
			t.Fatalf("MarkSent with cancelled ctx: error = %v, want retryable", err)
		}
		if g := mustGet(t, h.store, "n1"); g != (dedupe.Claim{}) {
			t.Fatalf("Get = %+v, want empty", g)
		}
	}},
	{"a closed store refuses calls retryably", func(t *testing.T, h harness) {
		must(t, h.store.Close())
		_, err := h.store.Claim(context.Background(), "n1", "a", long)
		if !failure.IsRetryable(err) || !errors.Is(err, dedupe.ErrClosed) {
			t.Fatalf("Claim after Close: error = %v, want retryable ErrClosed", err)
		}
		must(t, h.store.Close()) // idempotent
	}},
}

func TestStore(t *testing.T) {
	srv := redistest.Start(t)
	for _, im := range impls(srv) {
		t.Run(im.name, func(t *testing.T) {
			for _, tc := range storeCases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, im.new(t)) })
			}
		})
	}
}

// TestConcurrentClaims has 50 goroutines make 1,000 claims on 100 ids, each
// id contended by 10 owners: each id must be won by exactly one of them.
// Against Redis the calls must share round trips.
func TestConcurrentClaims(t *testing.T) {
	const goroutines, perGoroutine, ids = 50, 20, 100
	srv := redistest.Start(t)
	for _, im := range impls(srv) {
		t.Run(im.name, func(t *testing.T) {
			h := im.new(t)
			r, isRedis := h.store.(*dedupe.Redis)
			var before uint64
			if isRedis {
				before = r.RoundTrips()
			}

			var (
				mu      sync.Mutex
				winners = make(map[string][]string)
				wg      sync.WaitGroup
				start   = make(chan struct{})
				errs    = make(chan error, goroutines*perGoroutine)
			)
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					owner := fmt.Sprintf("w%02d", g)
					<-start
					for i := range perGoroutine {
						id := fmt.Sprintf("n%03d", (g*perGoroutine+i)%ids)
						c, err := h.store.Claim(context.Background(), id, owner, long)
						if err != nil {
							errs <- err
							continue
						}
						if c.Acquired {
							mu.Lock()
							winners[id] = append(winners[id], owner)
							mu.Unlock()
						} else if c.State != dedupe.StateInFlight || c.Owner == owner || c.LeaseLeft <= 0 {
							errs <- fmt.Errorf("claim %s by %s = %+v, want in flight by another owner", id, owner, c)
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}

			if len(winners) != ids {
				t.Fatalf("%d ids acquired, want %d", len(winners), ids)
			}
			for id, w := range winners {
				if len(w) != 1 {
					t.Errorf("%s acquired by %v, want exactly one owner", id, w)
					continue
				}
				if g := mustGet(t, h.store, id); g.Owner != w[0] {
					t.Errorf("%s held by %q, but %q was told it acquired it", id, g.Owner, w[0])
				}
			}

			if isRedis {
				calls := uint64(goroutines * perGoroutine)
				trips := r.RoundTrips() - before
				t.Logf("%d claims took %d round trips (%.3f per claim)", calls, trips, float64(trips)/float64(calls))
				if trips > calls/4 {
					t.Fatalf("%d claims took %d round trips, want well below %d: calls are not coalesced", calls, trips, calls)
				}
			}
		})
	}
}
