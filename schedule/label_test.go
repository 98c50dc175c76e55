package schedule_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/gymhq/herald/internal/retaintest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/schedule"
)

type nopPub struct{}

func (nopPub) Publish(context.Context, ...queue.Message) error { return nil }

// A worker defers a not-yet-due record as it decoded it (worker.deferred):
// n.Deferred is a substring of the Kafka record, and the first use of each
// (channel, why) pair makes it a Prometheus label value, kept for the life
// of the process with the whole record.
func TestHeldLabelKeepsNoRecord(t *testing.T) {
	m := obs.NewMetrics()
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	if retaintest.Kept("quiet_hours", func(s string) {
		n := &notification.Notification{ID: "ntf_1", EventID: "evt_1", Template: "t", Channel: notification.SMS, To: "+447700900123",
			CreatedAt: now, Deferred: s}
		if err := schedule.Defer(context.Background(), nopPub{}, m, n, now.Add(time.Hour), "herald.sms.v1", now); err != nil {
			t.Fatal(err)
		}
	}) {
		t.Error("herald_scheduled_total's label keeps the record its value came from")
	}
	runtime.KeepAlive(m)
}
