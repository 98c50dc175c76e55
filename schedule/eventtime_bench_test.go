package schedule

import (
	"testing"
	"time"

	"github.com/gymhq/herald/notification"
)

// BenchmarkEventTime: what the scheduler pays per schedule record with
// cancel keys to learn its event's time (a parse of the notification).
func BenchmarkEventTime(b *testing.B) {
	n := sampleNotification()
	for i := range 30 { // a reminder carries the event's flattened data
		n.Data = n.Data.With(notification.Field{Key: "field_" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Value: "a value of some length, as event data has"})
	}
	n.Data = n.Data.With(notification.Field{Key: "event_time", Value: "2026-12-01T09:59:00Z"})
	r, err := Schedule(n, n.CreatedAt.Add(time.Hour), "herald.push.v1", n.CreatedAt)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(r.Notification)))
	b.ReportAllocs()
	for b.Loop() {
		if r.EventTime().IsZero() {
			b.Fatal("no time")
		}
	}
}
