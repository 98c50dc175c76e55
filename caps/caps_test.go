package caps_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gymhq/herald/caps"
	"github.com/gymhq/herald/internal/redistest"
)

func counters(t *testing.T) map[string]caps.Counter {
	srv := redistest.Start(t)
	return map[string]caps.Counter{"memory": caps.NewMemory(), "redis": caps.NewRedis(srv.Client(), "")}
}

// Three an hour means three in any hour: the fourth waits until the first
// leaves the window, and the same notification taken again counts once.
func TestSlidingWindow(t *testing.T) {
	for name, c := range counters(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := caps.Limit{Max: 3, Per: time.Hour}
			t0 := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
			key := caps.Key("mem_1", "push", "reminders")
			for i := range 3 {
				d, err := c.Take(ctx, key, fmt.Sprint("n", i), l, t0.Add(time.Duration(i)*10*time.Minute))
				if err != nil || !d.Allowed {
					t.Fatalf("take %d: %+v %v", i, d, err)
				}
			}
			if d, _ := c.Take(ctx, key, "n1", l, t0.Add(35*time.Minute)); !d.Allowed {
				t.Fatal("a notification already counted was refused when taken again")
			}
			d, err := c.Take(ctx, key, "n3", l, t0.Add(40*time.Minute))
			if err != nil || d.Allowed || !d.RetryAt.Equal(t0.Add(time.Hour)) {
				t.Fatalf("fourth in the hour: %+v %v, want refused until %v", d, err, t0.Add(time.Hour))
			}
			if d, _ := c.Take(ctx, key, "n3", l, t0.Add(time.Hour+time.Second)); !d.Allowed {
				t.Fatal("the fourth was refused after the first left the window")
			}
			if d, _ := c.Take(ctx, caps.Key("mem_2", "push", "reminders"), "x", l, t0.Add(40*time.Minute)); !d.Allowed {
				t.Fatal("another person's cap was shared")
			}
		})
	}
}
