package dispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/templates"
)

// BenchmarkPlanEvent is the dispatcher's CPU per event without Kafka:
// decode, look up stored preferences (an in-memory store, so the figure is
// the planner's own), plan, and encode every notification, over the
// simulator's mix of events (the pipeline scenario's). It reports
// ns/notification, the figure issue 14 sets a budget for.
func BenchmarkPlanEvent(b *testing.B) {
	s, err := templates.Embedded()
	if err != nil {
		b.Fatal(err)
	}
	store := prefs.NewMemory()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	p := &dispatcher.Planner{Templates: s, Now: func() time.Time { return now }, Choices: prefs.PlanChoices(store)}
	g := sim.New(sim.Options{Seed: 11, Prefix: "bp", Members: 2000, Classes: 200})
	raw := make([][]byte, 512)
	for i := range raw {
		raw[i] = g.Next().Value
	}
	ctx := context.Background()
	b.ReportAllocs()
	notifications := 0
	i := 0
	for b.Loop() {
		ep, err := p.PlanEvent(ctx, raw[i%len(raw)])
		i++
		if err != nil {
			b.Fatal(err)
		}
		for j := range ep.Notifications {
			if _, err := notification.Encode(&ep.Notifications[j]); err != nil {
				b.Fatal(err)
			}
		}
		notifications += len(ep.Notifications)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(notifications, 1)), "ns/notification")
}
