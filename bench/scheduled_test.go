package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
)

// TestReminderCopies: the scheduled scenario's records, copied from a few
// encoded reminders, are byte for byte the schedule records the dispatcher
// would write for those bookings, so the scheduler is measured on real
// input.
func TestReminderCopies(t *testing.T) {
	tpl, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	src, err := newReminders(tpl, 7, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(50 * time.Hour)
	ids := map[string]bool{}
	for i, d := range []time.Duration{0, time.Millisecond, 1500 * time.Microsecond, time.Second, 37 * time.Nanosecond} {
		for _, set := range []string{"rem", "due"} {
			m := src.reminder(set, i*1000+i, due.Add(d))
			got := m.record()
			want, err := src.reference(m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Value, want) {
				t.Fatalf("copy differs from schedule.Encode:\n got %s\nwant %s", got.Value, want)
			}
			if got.Topic != topics.Schedule || string(got.Key) != m.entry || ids[m.id] {
				t.Errorf("record %s: topic %s key %s (seen before: %v)", m.id, got.Topic, got.Key, ids[m.id])
			}
			ids[m.id] = true
			r, err := schedule.Decode(got.Value)
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != schedule.KindSchedule || r.ID != m.entry || schedule.NotificationID(r.ID) != m.id || !r.Due.Equal(m.due) || len(r.Keys) != 2 || r.Keys[0] != m.bookingKey() {
				t.Errorf("record %+v", r)
			}
			n, err := notification.Decode(m.notification())
			if err != nil {
				t.Fatal(err)
			}
			if n.ID != m.id || !bytes.Equal(m.notification(), r.Notification) || notificationID(r.Notification) != m.id {
				t.Errorf("notification %s of record %s", n.ID, m.id)
			}
		}
	}
	if len(src.bases[0].record) < 10 {
		t.Errorf("the record has only %d placeholders", len(src.bases[0].record)-1)
	}
}

// TestScheduledSmall runs the scheduled scenario at a tiny size against
// the real servers and a scheduler process, and checks that every figure
// is there and that nothing fired twice or not at all. It asserts no
// speed.
func TestScheduledSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Kafka, Redis and a scheduler process")
	}
	env, closeEnv, err := NewEnv(Options{Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer closeEnv()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := runScheduledSize(ctx, env, scheduledSize{Waiting: 2000, Firing: 200, Rate: 2000, Cancels: 100})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	t.Logf("%s", b)
	for name, v := range map[string]*float64{
		"index_per_sec": r.IndexPerSec, "rss_after_index_mb": r.RSSAfterIndexMB, "peak_rss_mb": r.PeakRSSMB,
		"redis_bytes_per_entry": r.RedisBytesPerEntry, "lateness_p99_ms": r.LatenessP99ms, "cancel_us": r.CancelMicros,
		"cancels_per_sec": r.CancelsPerSec, "baseline_p99_ms": r.BaselineP99ms, "replace_us": r.ReplaceMicros, "replace_cpu_us": r.ReplaceCPUMicros,
	} {
		if v == nil || *v <= 0 {
			t.Errorf("%s missing or not positive: %s", name, b)
		}
	}
	if r.Scheduled != 2000 || r.Messages != 200 || r.BaselineMessages != 200 || r.Missing == nil || *r.Missing != 0 || r.Duplicates == nil || *r.Duplicates != 0 {
		t.Errorf("counts: %s", b)
	}
	if r.LatenessP50ms == nil || r.LatenessMaxms == nil || *r.LatenessP50ms > *r.LatenessP99ms || *r.LatenessP99ms > *r.LatenessMaxms {
		t.Errorf("lateness percentiles out of order: %s", b)
	}
	if !strings.Contains(r.Note, "withdrawn") || r.BaselineNote == "" || r.Target == "" {
		t.Errorf("notes: %s", b)
	}
}

// TestScheduledSize: the count of waiting reminders follows the scale,
// then Options.Scheduled, then HERALD_BENCH_SCHEDULED.
func TestScheduledSize(t *testing.T) {
	t.Setenv("HERALD_BENCH_SCHEDULED", "")
	if sz, err := sizeOf(Options{}); err != nil || sz != (scheduledSize{1_000_000, 20_000, 2_000, 10_000}) {
		t.Errorf("default %+v %v", sz, err)
	}
	if sz, _ := sizeOf(Options{Scale: 0.01}); sz.Waiting != 10_000 || sz.Firing != 200 || sz.Cancels != 100 {
		t.Errorf("scale 0.01: %+v", sz)
	}
	if sz, _ := sizeOf(Options{Scheduled: 50}); sz.Waiting != 50 || sz.Cancels != 50 {
		t.Errorf("Scheduled 50: %+v", sz)
	}
	t.Setenv("HERALD_BENCH_SCHEDULED", "300000")
	if sz, _ := sizeOf(Options{}); sz.Waiting != 300_000 {
		t.Errorf("HERALD_BENCH_SCHEDULED: %+v", sz)
	}
	t.Setenv("HERALD_BENCH_SCHEDULED", "lots")
	if _, err := sizeOf(Options{}); err == nil {
		t.Error("HERALD_BENCH_SCHEDULED=lots accepted")
	}
}
