package templates_test

import (
	"testing"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
)

// BenchmarkPlan plans a booking confirmation (email + push) from a decoded
// event: the dispatcher's per-event cost after decoding.
func BenchmarkPlan(b *testing.B) {
	s := embedded(b)
	ev := decode(b, sample(b, events.BookingConfirmed, "member-es.json"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Plan(ev, planTime); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender renders one notification per channel; email carries the
// .ics invite. The baseline sub-benchmark JSON-encodes the same email
// notification, the least a channel worker does per message anyway, so
// render cost reads as a ratio of it.
func BenchmarkRender(b *testing.B) {
	s := embedded(b)
	confirmed := plan(b, s, decode(b, sample(b, events.BookingConfirmed, "member-es.json")))
	promoted := plan(b, s, decode(b, sample(b, events.WaitlistPromoted, "member-es.json")))
	email := only(confirmed, notification.Email)[0]
	b.Run("baseline-encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := notification.Encode(&email); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tc := range []struct {
		name string
		n    notification.Notification
	}{
		{"email-ics", email},
		{"sms", only(promoted, notification.SMS)[0]},
		{"push", only(confirmed, notification.Push)[0]},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Render(&tc.n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
