package kafkarun

import (
	"context"
	"testing"
	"time"

	"github.com/gymhq/herald/queue"
)

// A record's wait is unknown (-1) for a timestamp Kafka never wrote: none
// (-1), or one from before Kafka existed, as a producer writing seconds
// instead of milliseconds does. An outside tester's record stamped 1 ms
// after the epoch put a 56-year wait into herald_record_wait_seconds_sum.
func TestRecordWait(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ts   time.Time
		want time.Duration
	}{
		{time.UnixMilli(-1), -1},
		{time.UnixMilli(0), -1},
		{time.UnixMilli(1), -1},
		{time.UnixMilli(now.Unix()), -1}, // seconds written as milliseconds
		{time.Time{}, -1},
		{now.Add(-3 * time.Second), 3 * time.Second},
		{now.Add(-7 * 24 * time.Hour), 7 * 24 * time.Hour}, // a retained backlog
		{now.Add(time.Second), 0},                          // the producer's clock ahead
	} {
		if got := recordWait(tc.ts, now); got != tc.want {
			t.Errorf("recordWait(%v) = %v, want %v", tc.ts, got, tc.want)
		}
	}
}

// TestAcquireStopsWhenCancelled: a partition that stops fetching takes no
// more in-flight slots, so it starts none of the records it had buffered
// (fd.take hands them out after the cancel), even while slots are free.
// Its loop notices the cancel only here; starting them all made a revoke's
// drain longer, up to abandoning work at its deadline (review of issue
// 14's fifteenth pass).
func TestAcquireStopsWhenCancelled(t *testing.T) {
	c, err := NewConsumer(ConsumerConfig{Brokers: []string{"127.0.0.1:1"}, GroupID: "g", Topics: []string{"t"}, MaxInFlight: 50},
		func(context.Context, *queue.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	taken := 0
	for range 100 {
		if c.acquire(ctx) == nil {
			taken++
		}
	}
	if taken != 0 {
		t.Errorf("acquire took %d of 100 slots after its context ended, want 0", taken)
	}
}
