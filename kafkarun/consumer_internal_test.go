package kafkarun

import (
	"testing"
	"time"
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
