package obs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gymhq/herald/obs"
)

// herald_partition_stalled_seconds counts how long records have waited
// behind a commit point that does not move, from the later of its last
// move and the last time nothing waited.
func TestStalls(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	s := obs.NewStalls(func() time.Time { return now })
	value := func() float64 {
		t.Helper()
		return testutil.ToFloat64(s)
	}
	step := func(d time.Duration) { now = now.Add(d) }

	// Idle for an hour: nothing waits, nothing is stalled.
	s.Lag("herald-dispatch", "gym.bookings.v1", 0, 100, 0)
	step(time.Hour)
	s.Lag("herald-dispatch", "gym.bookings.v1", 0, 100, 0)
	if v := value(); v != 0 {
		t.Fatalf("idle partition: %v, want 0", v)
	}
	// A record arrives and keeps failing: the stall counts from the first
	// poll that saw it waiting, not from the last commit an hour ago.
	step(15 * time.Second)
	s.Lag("herald-dispatch", "gym.bookings.v1", 0, 100, 2)
	step(10 * time.Minute)
	if v := value(); v != (10 * time.Minute).Seconds() {
		t.Fatalf("stuck for 10m: %v", v)
	}
	// Polls that see the same commit point keep counting; the value grows
	// between polls.
	s.Lag("herald-dispatch", "gym.bookings.v1", 0, 100, 5)
	step(time.Minute)
	if v := value(); v != (11 * time.Minute).Seconds() {
		t.Fatalf("stuck for 11m: %v", v)
	}
	// This process commits past it: the stall ends, though records wait.
	s.Committed("herald-dispatch", "gym.bookings.v1", 0, 101)
	if v := value(); v != 0 {
		t.Fatalf("just committed: %v, want 0", v)
	}
	step(30 * time.Second)
	// A poll that sees another member's commit also counts as a move.
	s.Lag("herald-dispatch", "gym.bookings.v1", 0, 104, 1)
	step(5 * time.Second)
	if v := value(); v != 5 {
		t.Fatalf("5s after a commit seen by the poller: %v", v)
	}
	// One series per group, topic and partition.
	s.Lag("herald-email", "herald.email.v1", 2, -1, 3)
	if err := testutil.CollectAndCompare(s, strings.NewReader(`
# HELP herald_partition_stalled_seconds Seconds since the group's committed offset on the partition last moved while records wait behind it (lag > 0); 0 when none wait.
# TYPE herald_partition_stalled_seconds gauge
herald_partition_stalled_seconds{group="herald-dispatch",partition="0",topic="gym.bookings.v1"} 5
herald_partition_stalled_seconds{group="herald-email",partition="2",topic="herald.email.v1"} 0
`)); err != nil {
		t.Error(err)
	}
	// A partition whose topic was deleted has no series at all.
	s.Forget("herald-dispatch", "gym.bookings.v1", 0)
	if n := testutil.CollectAndCount(s); n != 1 {
		t.Errorf("%d series after forgetting one of two", n)
	}
}
