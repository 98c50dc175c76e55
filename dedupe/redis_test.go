package dedupe_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/redistest"
)

// TestRedisKeys checks what each transition leaves in Redis: the documented
// hash layout and, above all, the expiry that frees a crashed owner's lease
// and bounds how long outcomes are kept.
func TestRedisKeys(t *testing.T) {
	const retention = 48 * time.Hour
	srv := redistest.Start(t)
	ctx := context.Background()
	clock := newFakeClock()
	store := dedupe.NewRedis(srv.Client(), dedupe.Options{Prefix: "t:", Retention: retention, Clock: clock.Now})
	t.Cleanup(func() { _ = store.Close() })
	stamp := strconv.FormatInt(clock.Now().UnixMilli(), 10)

	cases := []struct {
		name    string
		do      func() error
		fields  map[string]string
		ttl     time.Duration // expected PTTL, within a second below
		counted bool
	}{
		{
			name:   "claim sets the lease",
			do:     func() error { _, err := store.Claim(ctx, "n1", "a", 30*time.Second); return err },
			fields: map[string]string{"s": "in_flight", "o": "a", "t": stamp},
			ttl:    30 * time.Second,
		},
		{
			name:   "re-entrant claim resets the lease",
			do:     func() error { _, err := store.Claim(ctx, "n1", "a", 90*time.Second); return err },
			fields: map[string]string{"s": "in_flight", "o": "a", "t": stamp},
			ttl:    90 * time.Second,
		},
		{
			name:   "mark failed keeps the outcome for the retention",
			do:     func() error { return store.MarkFailed(ctx, "n1", "a", "invalid_address") },
			fields: map[string]string{"s": "failed", "o": "a", "r": "invalid_address", "t": stamp},
			ttl:    retention,
		},
		{
			name:   "mark sent replaces failed and keeps it for the retention",
			do:     func() error { return store.MarkSent(ctx, "n1", "a", "SM123") },
			fields: map[string]string{"s": "sent", "o": "a", "p": "SM123", "t": stamp},
			ttl:    retention,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); err != nil {
				t.Fatal(err)
			}
			got := srv.Client().HGetAll(ctx, "t:n1").Val()
			if len(got) != len(tc.fields) {
				t.Errorf("HGETALL = %v, want %v", got, tc.fields)
			}
			for k, v := range tc.fields {
				if got[k] != v {
					t.Errorf("field %s = %q, want %q (HGETALL %v)", k, got[k], v, got)
				}
			}
			ttl := srv.Client().PTTL(ctx, "t:n1").Val()
			if ttl > tc.ttl || ttl < tc.ttl-time.Second {
				t.Errorf("PTTL = %v, want %v", ttl, tc.ttl)
			}
		})
	}
}

func TestRedisDefaultRetention(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	store := dedupe.NewRedis(srv.Client(), dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	if err := store.MarkSent(ctx, "n1", "a", "pm"); err != nil {
		t.Fatal(err)
	}
	key := dedupe.DefaultPrefix + "n1"
	if ttl := srv.Client().PTTL(ctx, key).Val(); ttl > 7*24*time.Hour || ttl < 7*24*time.Hour-time.Minute {
		t.Fatalf("PTTL(%s) = %v, want 7 days", key, ttl)
	}
}

// TestRedisOutage: while Redis is down every call fails closed with a
// retryable network error; after it comes back (empty, with no scripts
// loaded) the store works again without being rebuilt.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	// go-redis's own retries only slow the outage down here; the store's
	// answer is the same with or without them.
	opts := srv.Options()
	opts.MaxRetries, opts.DialerRetries = -1, 1
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	store := dedupe.NewRedis(client, dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	wantAcquired(t, mustClaim(t, store, "n1", "a", long), "a")

	srv.Stop()
	calls := map[string]func() error{
		"claim":       func() error { _, err := store.Claim(ctx, "n2", "a", long); return err },
		"mark sent":   func() error { return store.MarkSent(ctx, "n1", "a", "pm") },
		"mark failed": func() error { return store.MarkFailed(ctx, "n1", "a", "rejected") },
		"release":     func() error { return store.Release(ctx, "n1", "a") },
		"get":         func() error { _, err := store.Get(ctx, "n1"); return err },
	}
	for name, call := range calls {
		err := call()
		if !failure.IsRetryable(err) || failure.ReasonOf(err) != failure.ReasonNetwork {
			t.Errorf("%s with Redis down: error = %v (%s), want retryable %s", name, err, failure.ReasonOf(err), failure.ReasonNetwork)
		}
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The client's pool probes a failed server about once a second, so
	// retry as a worker would, until the store answers or 10s have passed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := store.Claim(ctx, "n1", "b", long)
		if err == nil {
			wantAcquired(t, c, "b") // the restarted server is empty
			break
		}
		if !failure.IsRetryable(err) || time.Now().After(deadline) {
			t.Fatalf("Claim after Restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := store.MarkSent(ctx, "n1", "b", "pm"); err != nil {
		t.Fatal(err)
	}
	wantFound(t, mustGet(t, store, "n1"), dedupe.StateSent, "b")
}

// TestRedisCallerDeadline: a caller stops waiting when its ctx ends, even
// while Redis is stalled, and gets a retryable timeout. A command already
// on the wire still takes effect, and the same owner re-enters its claim.
func TestRedisCallerDeadline(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(srv.Options())
	t.Cleanup(func() { _ = client.Close() })
	store := dedupe.NewRedis(client, dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	mustGet(t, store, "warm-up") // load the scripts before stalling

	if err := srv.Client().Do(context.Background(), "CLIENT", "PAUSE", "300", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := store.Claim(ctx, "n1", "a", long)
	if !failure.IsRetryable(err) || failure.ReasonOf(err) != failure.ReasonTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Claim on a stalled Redis: error = %v, want retryable %s wrapping DeadlineExceeded", err, failure.ReasonTimeout)
	}

	// Waits for the pause to end: the abandoned claim ran first.
	c := mustClaim(t, store, "n1", "a", long)
	wantAcquired(t, c, "a")
	wantFound(t, mustClaim(t, store, "n1", "b", long), dedupe.StateInFlight, "a")
}

// TestRedisScriptCacheFlushed: EVALSHA falls back to EVAL when the server
// has lost its scripts (restart, failover, SCRIPT FLUSH).
func TestRedisScriptCacheFlushed(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	store := dedupe.NewRedis(srv.Client(), dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	wantAcquired(t, mustClaim(t, store, "n1", "a", long), "a")
	if err := srv.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before := store.RoundTrips()
	wantFound(t, mustClaim(t, store, "n1", "b", long), dedupe.StateInFlight, "a")
	if n := store.RoundTrips() - before; n != 2 {
		t.Fatalf("claim after SCRIPT FLUSH took %d round trips, want 2 (EVALSHA, then EVAL)", n)
	}
	before = store.RoundTrips()
	mustClaim(t, store, "n1", "b", long)
	if n := store.RoundTrips() - before; n != 1 {
		t.Fatalf("next claim took %d round trips, want 1: EVAL should have cached the script", n)
	}
}

// TestRedisLoneCallerIsSentAlone: with no concurrency each call is one
// round trip of its own, so coalescing never delays a quiet worker.
func TestRedisLoneCallerIsSentAlone(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	store := dedupe.NewRedis(srv.Client(), dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	mustClaim(t, store, "warm-up", "a", long)
	_ = store.MarkSent(ctx, "warm-up", "a", "pm") // load the scripts
	before := store.RoundTrips()
	for i := range 10 {
		id := "n" + strconv.Itoa(i)
		mustClaim(t, store, id, "a", long)
		if err := store.MarkSent(ctx, id, "a", "pm"); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.RoundTrips() - before; n != 20 {
		t.Fatalf("20 sequential calls took %d round trips, want 20", n)
	}
}
