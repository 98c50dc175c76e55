package dedupe_test

import (
	"context"
	"testing"
	"time"

	"github.com/gymhq/herald/dedupe"
)

// TestMemoryClock: Memory measures leases and retention on the injected
// clock, to the millisecond, as Redis does on its own.
func TestMemoryClock(t *testing.T) {
	const retention = time.Hour
	ctx := context.Background()
	cases := []struct {
		name    string
		outcome func(s dedupe.Store) error
		keep    time.Duration // how long the key lives after the outcome
		state   dedupe.State
	}{
		{"in flight lives for its lease", func(dedupe.Store) error { return nil }, 10 * time.Second, dedupe.StateInFlight},
		{"sent lives for the retention", func(s dedupe.Store) error { return s.MarkSent(ctx, "n1", "a", "pm") }, retention, dedupe.StateSent},
		{"failed lives for the retention", func(s dedupe.Store) error { return s.MarkFailed(ctx, "n1", "a", "rejected") }, retention, dedupe.StateFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			m := dedupe.NewMemory(dedupe.Options{Retention: retention, Clock: clock.Now})
			mustClaim(t, m, "n1", "a", 10*time.Second)
			must(t, tc.outcome(m))

			clock.Advance(tc.keep - time.Millisecond)
			g := mustGet(t, m, "n1")
			wantFound(t, g, tc.state, "a")
			if tc.state == dedupe.StateInFlight && g.LeaseLeft != time.Millisecond {
				t.Fatalf("LeaseLeft = %v, want 1ms", g.LeaseLeft)
			}

			clock.Advance(time.Millisecond)
			if g := mustGet(t, m, "n1"); g != (dedupe.Claim{}) {
				t.Fatalf("Get after %v = %+v, want expired", tc.keep, g)
			}
			wantAcquired(t, mustClaim(t, m, "n1", "b", long), "b")
		})
	}
}

func TestMemoryDefaultRetention(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	m := dedupe.NewMemory(dedupe.Options{Clock: clock.Now})
	must(t, m.MarkSent(ctx, "n1", "a", "pm"))
	clock.Advance(7*24*time.Hour - time.Millisecond)
	wantFound(t, mustGet(t, m, "n1"), dedupe.StateSent, "a")
	clock.Advance(time.Millisecond)
	if g := mustGet(t, m, "n1"); g.State != dedupe.StateNone {
		t.Fatalf("Get after 7 days = %+v, want expired", g)
	}
}
