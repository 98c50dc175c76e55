package bench

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gymhq/herald/sim"
)

// At every time of day, the bench's classes start after the run: the
// events are made at eventClock, up to a day old, and a reminder whose
// class has started is ended as expired by the workers (routing.yaml
// expires:), which the scenarios would wait for in vain. Every day from
// 00:00 to 00:30 UTC the pipeline scenario did, for 236 notifications.
func TestClassesStartAfterTheRun(t *testing.T) {
	day := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for m := 0; m < 24*60; m += 5 {
		now := day.Add(time.Duration(m) * time.Minute)
		clock := latestHalfPastMidnight(now)
		g := sim.New(sim.Options{Seed: 11, Prefix: "t", Members: 20, Classes: 200, Now: func() time.Time { return clock }, ClassesAhead: classesAhead})
		for range 400 {
			var ev struct {
				Data struct {
					Class struct {
						StartsAt time.Time `json:"starts_at"`
					} `json:"class"`
				} `json:"data"`
			}
			if err := json.Unmarshal(g.Next().Value, &ev); err != nil {
				t.Fatal(err)
			}
			if start := ev.Data.Class.StartsAt; start.Before(now.Add(time.Hour)) {
				t.Fatalf("at %s (events made at %s) a class starts at %s, within the hour a run takes", now.Format("15:04"), clock.Format(time.RFC3339), start.Format(time.RFC3339))
			}
		}
	}
}
