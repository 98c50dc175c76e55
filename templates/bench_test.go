package templates_test

import (
	"errors"
	"testing"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
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

// BenchmarkReload measures hot reload on the shipped tree: "unchanged" is
// what every poll of HERALD_TEMPLATES_DIR costs (read and hash the tree),
// "changed" what a change costs (read, validate everything, render every
// sample in every locale, swap).
func BenchmarkReload(b *testing.B) {
	other := mustLoadDir(b, writeTree(b, newTypeTree()))
	b.Run("unchanged", func(b *testing.B) {
		live := templates.NewLive(mustLoadDir(b, "."))
		for b.Loop() {
			if _, err := live.Reload("."); !errors.Is(err, templates.ErrUnchanged) {
				b.Fatal(err)
			}
		}
	})
	b.Run("changed", func(b *testing.B) {
		for b.Loop() {
			live := templates.NewLive(other)
			if r, err := live.Reload("."); err != nil || r.Err != nil {
				b.Fatal(err, r.Err)
			}
		}
	})
}

func mustLoadDir(b *testing.B, dir string) *templates.Set {
	s, err := templates.LoadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	return s
}
