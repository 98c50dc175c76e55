package dispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/templates"
	"go.uber.org/zap"
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

// discard is a Publisher that keeps nothing: BenchmarkHandle measures the
// dispatcher, not a broker.
type discard struct{ msgs int }

func (d *discard) Publish(_ context.Context, msgs ...queue.Message) error {
	d.msgs += len(msgs)
	return nil
}

// BenchmarkHandle is the dispatcher's whole CPU per event record as the
// consumer calls it: plan, encode, the scheduler's records for held
// notifications, headers and messages, metrics; over the same mix as
// BenchmarkPlanEvent, with a publisher that discards.
func BenchmarkHandle(b *testing.B) {
	s, err := templates.Embedded()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	p := &dispatcher.Planner{Templates: s, Now: func() time.Time { return now }, Choices: prefs.PlanChoices(prefs.NewMemory())}
	pub := &discard{}
	d := &dispatcher.Dispatcher{Planner: p, Publisher: pub, Logger: zap.NewNop(), Metrics: obs.NewMetrics()}
	g := sim.New(sim.Options{Seed: 11, Prefix: "bh", Members: 2000, Classes: 200})
	recs := make([]queue.Message, 512)
	for i := range recs {
		recs[i] = queue.Message{Topic: "gym.bookings.v1", Offset: int64(i), Key: []byte("cls"), Value: g.Next().Value,
			Headers: []queue.Header{{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}}}
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := d.Handle(ctx, &recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(pub.msgs, 1)), "ns/record-out")
}
