package scalemodel_test

import (
	"context"
	"errors"
	"sort"
	"testing"

	_ "github.com/gymhq/herald/channels/all"
	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/templates"
)

// BenchmarkNotificationMix measures the inputs docs/scale.md takes from the
// shipped routing: the pipeline bench's 20,000 simulated events (sim seed
// 11, 2,000 members, 200 classes, as bench/pipeline.go makes them) planned
// by the dispatcher's planner on the embedded templates, counted per
// channel, sent at once or held by the scheduler (the reminders). Quiet
// hours are off: they move a notification in time, they do not add one,
// and with them the split would depend on when it runs. It also measures
// the bytes of each channel-topic record as the dispatcher writes it: key
// (recipient id), value (notification.Encode) and headers (a W3C
// traceparent from the booking service, herald-event-id), and of each
// event (key and value, no headers). It measures, it
// does not time; run it once:
//
//	go test -run '^$' -bench NotificationMix -benchtime 1x -v ./internal/scalemodel/
func BenchmarkNotificationMix(b *testing.B) {
	const events = 20000
	tpl, err := templates.Embedded()
	if err != nil {
		b.Fatal(err)
	}
	g := sim.New(sim.Options{Seed: 11, Prefix: "pl", Members: 2000, Classes: 200})
	// Quiet hours move a notification in time, not in number, and would make
	// the split depend on when the benchmark runs: off here.
	p := &dispatcher.Planner{Templates: tpl, NoQuietHours: true}
	type count struct{ now, held, bytes int }
	per := map[notification.Channel]*count{}
	traceparent := len("traceparent") + len("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	var total, held, recBytes, evBytes int
	for range events {
		ev := g.Next()
		evBytes += len(ev.Key) + len(ev.Value)
		ep, err := p.PlanEvent(context.Background(), ev.Value)
		if errors.Is(err, dispatcher.ErrUnknownType) {
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		for i := range ep.Notifications {
			n := &ep.Notifications[i]
			c := per[n.Channel]
			if c == nil {
				c = &count{}
				per[n.Channel] = c
			}
			v, err := notification.Encode(n)
			if err != nil {
				b.Fatal(err)
			}
			size := len(n.RecipientID) + len(v) + traceparent + len(dispatcher.HeaderEventID) + len(n.EventID)
			total++
			if n.DueAt.After(ep.Now) || len(n.CancelKeys) > 0 {
				c.held++
				held++
				continue // a schedule record, measured by the scheduled bench
			}
			c.now++
			c.bytes += size
			recBytes += size
		}
	}
	chs := make([]string, 0, len(per))
	for ch := range per {
		chs = append(chs, string(ch))
	}
	sort.Strings(chs)
	for _, ch := range chs {
		c := per[notification.Channel(ch)]
		avg := 0.0
		if c.now > 0 {
			avg = float64(c.bytes) / float64(c.now)
		}
		b.Logf("%-8s now %6d  held %6d  share %5.1f%%  record bytes %6.0f", ch, c.now, c.held, 100*float64(c.now+c.held)/float64(total), avg)
		b.ReportMetric(float64(c.now+c.held)/events, ch+"/event")
	}
	b.Logf("events %d → notifications %d (%d at once, %d held by the scheduler); %.3f per event; at-once record %.0f bytes on average",
		events, total, total-held, held, float64(total)/events, float64(recBytes)/float64(total-held))
	b.ReportMetric(float64(total)/events, "notifications/event")
	b.ReportMetric(float64(recBytes)/float64(total-held), "record-bytes")
	b.ReportMetric(float64(evBytes)/events, "event-bytes")
}
