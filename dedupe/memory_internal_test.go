package dedupe

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// TestMemorySweepsExpiredKeys: keys nobody reads again are still dropped
// once expired, so `herald dev` does not grow without bound.
func TestMemorySweepsExpiredKeys(t *testing.T) {
	now := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	m := NewMemory(Options{Retention: time.Hour, Clock: func() time.Time { return now }})
	ctx := context.Background()
	for i := range minSweep - 1 {
		if err := m.MarkSent(ctx, "old"+strconv.Itoa(i), "a", "pm"); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Hour)
	if err := m.MarkSent(ctx, "new", "a", "pm"); err != nil {
		t.Fatal(err)
	}
	if n := len(m.keys); n != 1 {
		t.Fatalf("%d keys after the sweep, want 1", n)
	}
}
