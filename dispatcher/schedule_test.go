package dispatcher_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
	"go.uber.org/zap"
)

// fleetClock drives the dispatcher and the scheduler alike.
type fleetClock struct{ t time.Time }

func (c *fleetClock) now() time.Time { return c.t }

// night is a dispatcher and a scheduler on one clock, at 23:30 in London,
// where the sample members live; what the dispatcher publishes to the
// schedule topic is handed to the scheduler as its group would.
type night struct {
	t     *testing.T
	clock *fleetClock
	pub   *recorder
	d     *dispatcher.Dispatcher
	s     *schedule.Scheduler
	seen  int
}

func newNight(t *testing.T) *night {
	loc, _ := time.LoadLocation("Europe/London")
	n := &night{t: t, clock: &fleetClock{t: time.Date(2026, 12, 4, 23, 30, 0, 0, loc)}, pub: &recorder{}}
	m := obs.NewMetrics()
	n.d = &dispatcher.Dispatcher{Planner: planner(t, n.clock.now), Publisher: n.pub, Logger: zap.NewNop(), Metrics: m}
	idx := schedule.NewMemory()
	idx.Now = n.clock.now
	s, err := schedule.New(schedule.Config{Index: idx, Publisher: n.pub, Metrics: m, Now: n.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	n.s = s
	return n
}

func (n *night) event(raw []byte) {
	n.t.Helper()
	if err := n.d.Handle(context.Background(), &queue.Message{Topic: "gym.bookings.v1", Value: raw}); err != nil {
		n.t.Fatal(err)
	}
	n.feed()
}

// feed hands the schedule topic's new records to the scheduler.
func (n *night) feed() {
	for ; n.seen < len(n.pub.msgs); n.seen++ {
		m := n.pub.msgs[n.seen]
		if m.Topic == topics.Schedule {
			if err := n.s.Handle(context.Background(), &m); err != nil {
				n.t.Fatal(err)
			}
		}
	}
}

func (n *night) at(t time.Time) {
	n.t.Helper()
	n.clock.t = t
	if err := n.s.Step(context.Background()); err != nil {
		n.t.Fatal(err)
	}
	n.feed()
}

// classCancelled is the sample class cancellation, of class id at time at
// (RFC 3339).
func classCancelled(t *testing.T, id, at string) []byte {
	t.Helper()
	return []byte(strings.NewReplacer(`"cls_mad_yoga_0800"`, `"`+id+`"`, `"2026-11-23T05:30:00Z"`, `"`+at+`"`).
		Replace(string(readSample(t, "gym.class.cancelled", "three-attendees.json"))))
}

// sent returns the notifications on ch's topic so far.
func (n *night) sent(ch notification.Channel) []*notification.Notification {
	var out []*notification.Notification
	for _, m := range n.pub.msgs {
		if m.Topic == topics.Channel(ch) {
			x, err := notification.Decode(m.Value)
			if err != nil {
				n.t.Fatal(err)
			}
			out = append(out, x)
		}
	}
	return out
}

// A member in London at 23:30 gets the class reminder's push at 07:00
// London time, not before; the in-app item at once; and a class
// cancellation's urgent SMS at once, quiet hours or not.
func TestQuietHoursThroughTheScheduler(t *testing.T) {
	n := newNight(t)
	n.event(readSample(t, "gym.class.reminder", "member-with-push-en.json"))
	n.event(readSample(t, "gym.class.cancelled", "three-attendees.json"))
	if got := n.sent(notification.Push); len(got) != 0 {
		t.Fatalf("%d pushes at 23:30 local", len(got))
	}
	if got := n.sent(inapp); len(got) == 0 {
		t.Fatal("the in-app items waited; quiet hours cover push and sms")
	}
	if got := n.sent(notification.SMS); len(got) != 3 {
		t.Fatalf("%d urgent class-cancellation texts at once, want 3", len(got))
	}
	loc := n.clock.t.Location()
	n.at(time.Date(2026, 12, 5, 6, 59, 59, 0, loc))
	if got := n.sent(notification.Push); len(got) != 0 {
		t.Fatalf("%d pushes at 06:59:59 local", len(got))
	}
	n.at(time.Date(2026, 12, 5, 7, 0, 0, 0, loc))
	got := n.sent(notification.Push)
	if len(got) != 1 || got[0].Deferred != notification.DeferQuietHours || got[0].Template != "gym.class.reminder" {
		t.Fatalf("pushes at 07:00 local: %+v", got)
	}
}

// The booking's reminder is held until two hours before its class and the
// booking's cancellation withdraws it: the same records the fleet writes.
// Without the cancellation it goes out at its time.
func TestReminderCancelledByTheBookingsCancellation(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		n := newNight(t)
		n.clock.t = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC) // the class is 24 Nov 18:30Z
		booked := readSample(t, "gym.booking.confirmed", "member-no-push-en.json")
		n.event(booked)
		n.at(time.Date(2026, 11, 24, 16, 29, 0, 0, time.UTC))
		if cancel {
			n.event([]byte(strings.NewReplacer(`"gym.booking.confirmed"`, `"gym.booking.cancelled"`, `"evt_01JD8X9N4P"`, `"evt_cancel_1"`).Replace(string(booked))))
		}
		n.at(time.Date(2026, 11, 24, 16, 30, 0, 0, time.UTC))
		reminders := 0
		for _, x := range n.sent(notification.SMS) {
			if x.Template == "gym.booking.confirmed/reminder" {
				reminders++
			}
		}
		if want := map[bool]int{false: 1, true: 0}[cancel]; reminders != want {
			t.Fatalf("cancelled %v: %d reminders sent, want %d", cancel, reminders, want)
		}
	}
}

// An event type no folder routes is skipped, not retried: planning's
// retryable errors (preferences unavailable) are only the classified
// ones. The fleet's end-to-end test found the dispatcher retrying
// gym.locker.opened for ever.
func TestUnknownTypeIsSkippedWithStoredChoices(t *testing.T) {
	p := planner(t, time.Now)
	p.Choices = func(context.Context, []string) (map[string]templates.Choices, error) { return nil, nil }
	pub := &recorder{}
	d := &dispatcher.Dispatcher{Planner: p, Publisher: pub, Logger: zap.NewNop(), Metrics: obs.NewMetrics()}
	raw := []byte(`{"specversion":"1.0","id":"evt_unknown_1","source":"s","type":"gym.locker.opened","data":{"x":1}}`)
	if err := d.Handle(context.Background(), &queue.Message{Topic: "gym.bookings.v1", Value: raw}); err != nil {
		t.Fatalf("Handle: %v, want the unknown type skipped", err)
	}
	if len(pub.msgs) != 0 {
		t.Fatalf("published %d records for an unknown type", len(pub.msgs))
	}
}

// A cancelled booking's reminder is never sent, even when the reminder is
// due at once: a booking made less than two hours ahead whose cancellation
// was read first (another partition), and a replay of the booking after
// the reminder's time (an offset reset, a long lag). The outside tester
// got both: the dispatcher sent what was due straight to the channel.
func TestCancelledReminderDueNowIsNotSent(t *testing.T) {
	booked := readSample(t, "gym.booking.confirmed", "member-no-push-en.json") // class 24 Nov 18:30Z
	cancelled := []byte(strings.NewReplacer(`"gym.booking.confirmed"`, `"gym.booking.cancelled"`, `"evt_01JD8X9N4P"`, `"evt_cancel_1"`).Replace(string(booked)))
	reminders := func(n *night) int {
		c := 0
		for _, x := range n.sent(notification.SMS) {
			if x.Template == "gym.booking.confirmed/reminder" {
				c++
			}
		}
		return c
	}

	n := newNight(t)
	n.clock.t = time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)
	n.event(cancelled)
	n.event(booked)
	n.at(n.clock.t.Add(time.Second))
	if c := reminders(n); c != 0 {
		t.Fatalf("cancellation read first, booking 90 minutes ahead: %d reminders sent", c)
	}

	n = newNight(t)
	n.clock.t = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	n.event(booked)
	n.event(cancelled)
	n.at(time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC))
	n.event(booked) // the replay, after the reminder's time
	n.at(n.clock.t.Add(time.Second))
	if c := reminders(n); c != 0 {
		t.Fatalf("replayed after its time: %d reminders of a cancelled booking sent", c)
	}

	n = newNight(t) // and without a cancellation it goes at once, once
	n.clock.t = time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)
	n.event(booked)
	n.event(booked)
	n.at(n.clock.t.Add(time.Second))
	if c := reminders(n); c != 1 {
		t.Fatalf("booking 90 minutes ahead: %d reminders, want 1", c)
	}
}

// Stored choices are looked up once per event, in one call for every
// person its rules reach, nobody twice, and a failing lookup holds the
// event (retryable) rather than planning without them.
func TestChoicesLookedUpOncePerEvent(t *testing.T) {
	p := planner(t, func() time.Time { return time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC) })
	var calls [][]string
	p.Choices = func(_ context.Context, ids []string) (map[string]templates.Choices, error) {
		calls = append(calls, ids)
		return nil, errors.New("redis: connection refused")
	}
	raw := readSample(t, "gym.class.cancelled", "three-attendees.json")
	_, err := p.PlanEvent(context.Background(), raw)
	if failure.ClassOf(err) != failure.Retryable {
		t.Fatalf("lookup failing: %v, want retryable", err)
	}
	if len(calls) != 1 || len(calls[0]) != 3 {
		t.Fatalf("lookups %v, want one with the three attendees", calls)
	}
}

// A class reminder held for quiet hours is withdrawn when the gym cancels
// the class before they end (its rule's cancel_on): before, the push went
// out at 07:00 for a class cancelled at 23:45 (an outside tester's find).
// One for another class is still sent.
func TestHeldReminderWithdrawnByTheClassCancellation(t *testing.T) {
	n := newNight(t)
	reminder := readSample(t, "gym.class.reminder", "member-with-push-en.json")
	other := bytes.Replace(bytes.Replace(reminder, []byte(`"cls_spin_1000"`), []byte(`"cls_spin_1100"`), 1),
		[]byte(`"evt_01JDB0C4HT"`), []byte(`"evt_other_class"`), 1)
	n.event(reminder)
	n.event(other)
	n.clock.t = n.clock.t.Add(15 * time.Minute)
	n.event(classCancelled(t, "cls_spin_1000", "2030-12-05T08:15:00Z")) // after the reminder's event
	loc := n.clock.t.Location()
	n.at(time.Date(2026, 12, 5, 7, 0, 0, 0, loc))
	got := n.sent(notification.Push)
	if len(got) != 1 || got[0].EventID != "evt_other_class" {
		var ids []string
		for _, g := range got {
			ids = append(ids, g.EventID)
		}
		t.Fatalf("pushes at 07:00: %v, want only the other class's reminder", ids)
	}
}

// A class reminder sent at once, in the daytime, carries its rule's
// cancel keys, so what holds it later (a retry after a failed send, a
// frequency cap) is withdrawn when the gym cancels the class. Before, only
// what quiet hours held carried them: a push retried after an outage went
// out for a class the gym had cancelled meanwhile. It still skips the
// scheduler's hop on its way out.
func TestReminderRetryWithdrawnByTheClassCancellation(t *testing.T) {
	n := newNight(t)
	loc := n.clock.t.Location()
	n.clock.t = time.Date(2026, 12, 4, 12, 0, 0, 0, loc)
	n.event(readSample(t, "gym.class.reminder", "member-with-push-en.json"))
	for _, m := range n.pub.msgs {
		if m.Topic == topics.Schedule {
			t.Fatalf("a reminder due now went through the scheduler: %s", m.Value)
		}
	}
	got := n.sent(notification.Push)
	if len(got) != 1 {
		t.Fatalf("%d pushes at noon, want 1 at once", len(got))
	}
	push := got[0]
	if len(push.CancelKeys) == 0 {
		t.Fatal("the reminder sent at once carries no cancel keys")
	}
	// The push provider is down: the worker hands the retry to the
	// scheduler, as pipeline.NewWait's Defer does.
	push.Attempt, push.Deferred = 2, notification.DeferRetry
	push.NotBefore = n.clock.t.Add(10 * time.Minute)
	if err := schedule.Defer(context.Background(), n.pub, nil, push, push.NotBefore, topics.Retry(notification.Push), n.clock.t); err != nil {
		t.Fatal(err)
	}
	n.feed()
	n.clock.t = n.clock.t.Add(time.Minute)
	n.event(classCancelled(t, "cls_spin_1000", "2030-12-05T08:15:00Z"))
	n.at(push.NotBefore.Add(time.Second))
	for _, m := range n.pub.msgs {
		if m.Topic == topics.Retry(notification.Push) {
			t.Fatalf("the reminder's retry fired for a cancelled class: %s", m.Value)
		}
	}
}

// A booking cancelled and then made again under the same booking id (or a
// class the gym cancelled and reinstated) gets its reminder: a
// cancellation withdraws what events before it scheduled, not what later
// ones do. Before, its tombstone withdrew every reminder under the key for
// the schedule's retention (30 days), whichever order the scheduler read
// the three events in.
func TestRebookedAfterItsCancellationIsReminded(t *testing.T) {
	booked := readSample(t, "gym.booking.confirmed", "member-no-push-en.json") // at 21 Nov 09:12Z, class 24 Nov 18:30Z
	cancelled := []byte(strings.NewReplacer(`"gym.booking.confirmed"`, `"gym.booking.cancelled"`, `"evt_01JD8X9N4P"`, `"evt_cancel_1"`,
		`"2026-11-21T09:12:00Z"`, `"2026-11-21T10:00:00Z"`).Replace(string(booked)))
	rebooked := []byte(strings.NewReplacer(`"evt_01JD8X9N4P"`, `"evt_rebook_1"`, `"2026-11-21T09:12:00Z"`, `"2026-11-21T11:00:00Z"`).Replace(string(booked)))
	for _, order := range [][]string{{"booked", "cancelled", "rebooked"}, {"booked", "rebooked", "cancelled"}, {"cancelled", "rebooked", "booked"}} {
		n := newNight(t)
		n.clock.t = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		for _, e := range order {
			n.event(map[string][]byte{"booked": booked, "cancelled": cancelled, "rebooked": rebooked}[e])
		}
		n.at(time.Date(2026, 11, 24, 16, 30, 0, 0, time.UTC))
		var from []string
		for _, x := range n.sent(notification.SMS) {
			if x.Template == "gym.booking.confirmed/reminder" {
				from = append(from, x.EventID)
			}
		}
		if len(from) != 1 || from[0] != "evt_rebook_1" {
			t.Errorf("read in the order %v: reminders from %q, want one, the re-booking's", order, from)
		}
	}
}

// Producers' clocks differ: a cancellation whose event time is a little
// before its booking's (the class service's clock behind the booking
// service's) still withdraws the booking's reminder (schedule.CancelSkew).
func TestCancellationWithASkewedClockStillWithdraws(t *testing.T) {
	booked := readSample(t, "gym.booking.confirmed", "member-no-push-en.json") // at 21 Nov 09:12Z
	cancelled := []byte(strings.NewReplacer(`"gym.booking.confirmed"`, `"gym.booking.cancelled"`, `"evt_01JD8X9N4P"`, `"evt_cancel_1"`,
		`"2026-11-21T09:12:00Z"`, `"2026-11-21T09:11:30Z"`).Replace(string(booked)))
	for _, cancelFirst := range []bool{false, true} {
		n := newNight(t)
		n.clock.t = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		if cancelFirst {
			n.event(cancelled)
			n.event(booked)
		} else {
			n.event(booked)
			n.event(cancelled)
		}
		n.at(time.Date(2026, 11, 24, 16, 30, 0, 0, time.UTC))
		for _, x := range n.sent(notification.SMS) {
			if x.Template == "gym.booking.confirmed/reminder" {
				t.Fatalf("cancellation read first %v: the reminder of a booking cancelled 30 s \"before\" it was sent", cancelFirst)
			}
		}
	}
}

// A class moved: the booking service confirms the booking again, same
// booking id, with the class's new time. The member gets one reminder,
// two hours before the new time, in whichever order the scheduler reads
// the two confirmations; before schedule: replace:, the stale one (for a
// time the class no longer has) went out too. Another booking's reminder
// is left alone, and a cancellation after the move still withdraws it.
func TestMovedClassRemindsOnceAtItsNewTime(t *testing.T) {
	booked := readSample(t, "gym.booking.confirmed", "member-no-push-en.json") // at 21 Nov 09:12Z, class 24 Nov 18:30Z
	moved := []byte(strings.NewReplacer(`"evt_01JD8X9N4P"`, `"evt_move_1"`, `"2026-11-21T09:12:00Z"`, `"2026-11-21T10:00:00Z"`,
		`"2026-11-24T18:30:00Z"`, `"2026-11-24T19:30:00Z"`, `"2026-11-24T19:30:00Z"`, `"2026-11-24T20:30:00Z"`).Replace(string(booked)))
	other := []byte(strings.NewReplacer(`"evt_01JD8X9N4P"`, `"evt_other_1"`, `"bkg_3VN8QW2E"`, `"bkg_OTHER"`).Replace(string(booked)))
	cancelled := []byte(strings.NewReplacer(`"gym.booking.confirmed"`, `"gym.booking.cancelled"`, `"evt_01JD8X9N4P"`, `"evt_cancel_1"`,
		`"2026-11-21T09:12:00Z"`, `"2026-11-21T11:00:00Z"`).Replace(string(booked)))
	// The move confirmed by an event without a time, which cannot be
	// ordered: it neither replaces nor is replaced, so both wait, as
	// without replace:. Before, the earlier confirmation's replacement
	// withdrew it, and only the stale reminder went (the outside tester's).
	untimedMove := []byte(strings.NewReplacer(`"evt_move_1"`, `"evt_untimed_move"`, `"time": "2026-11-21T10:00:00Z",`, ``).Replace(string(moved)))
	if bytes.Contains(untimedMove, []byte(`"time"`)) {
		t.Fatal("the untimed move still has a time")
	}
	events := map[string][]byte{"booked": booked, "moved": moved, "other": other, "cancelled": cancelled, "untimed": untimedMove}
	for _, tc := range []struct {
		order []string
		want  []string // the reminders' events, in the order sent
	}{
		{[]string{"booked", "moved", "other"}, []string{"evt_other_1", "evt_move_1"}},
		{[]string{"moved", "booked", "other"}, []string{"evt_other_1", "evt_move_1"}},
		{[]string{"other", "moved", "booked"}, []string{"evt_other_1", "evt_move_1"}},
		{[]string{"booked", "moved", "cancelled"}, nil},
		{[]string{"cancelled", "moved", "booked"}, nil},
		{[]string{"booked", "untimed"}, []string{"evt_01JD8X9N4P", "evt_untimed_move"}},
		{[]string{"untimed", "booked"}, []string{"evt_01JD8X9N4P", "evt_untimed_move"}},
		{[]string{"booked", "untimed", "cancelled"}, nil},
		{[]string{"cancelled", "untimed", "booked"}, nil},
	} {
		n := newNight(t)
		n.clock.t = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		for _, e := range tc.order {
			n.event(events[e])
		}
		n.at(time.Date(2026, 11, 24, 16, 30, 0, 0, time.UTC)) // the old time's reminder
		n.at(time.Date(2026, 11, 24, 17, 30, 0, 0, time.UTC)) // the new time's
		var from []string
		for _, x := range n.sent(notification.SMS) {
			if x.Template == "gym.booking.confirmed/reminder" {
				from = append(from, x.EventID)
				if x.EventID == "evt_move_1" && (x.Data.Get("class_starts_at") != "2026-11-24T19:30:00Z" || !x.DueAt.Equal(time.Date(2026, 11, 24, 17, 30, 0, 0, time.UTC))) {
					t.Errorf("read in the order %v: the moved class's reminder is for %s, due %s", tc.order, x.Data.Get("class_starts_at"), x.DueAt)
				}
			}
		}
		if strings.Join(from, ",") != strings.Join(tc.want, ",") {
			t.Errorf("read in the order %v: reminders from %q, want %q", tc.order, from, tc.want)
		}
		replaces := 0
		for _, m := range n.pub.msgs {
			if m.Topic == topics.Schedule && m.Header(schedule.HeaderReplace) != nil {
				replaces++
			}
		}
		if want := len(tc.order) - strings.Count(strings.Join(tc.order, " "), "cancelled") - strings.Count(strings.Join(tc.order, " "), "untimed"); replaces != want {
			t.Errorf("read in the order %v: %d replace records (herald trace's header), want one per confirmation, %d", tc.order, replaces, want)
		}
	}
}

// An event without a time cannot be ordered, whatever its data holds:
// an untimed confirmation with a data field event_time had its reminder
// indexed at that time, so a cancellation stamped earlier (less
// CancelSkew) did not withdraw it, and a cancelled booking was reminded
// (an outside review). Herald's event_time wins over the data's, and an
// untimed event has none.
func TestUntimedEventsDataEventTimeIsNotItsTime(t *testing.T) {
	booked := readSample(t, "gym.booking.confirmed", "member-no-push-en.json")
	untimed := []byte(strings.NewReplacer(`"time": "2026-11-21T09:12:00Z",`, ``,
		`"booking_id": "bkg_3VN8QW2E",`, `"booking_id": "bkg_3VN8QW2E", "event_time": "2026-11-21T09:30:00Z",`).Replace(string(booked)))
	if bytes.Contains(untimed, []byte(`"time": `)) || !bytes.Contains(untimed, []byte(`"event_time"`)) {
		t.Fatal("the untimed booking is not as meant")
	}
	cancelled := []byte(strings.NewReplacer(`"gym.booking.confirmed"`, `"gym.booking.cancelled"`, `"evt_01JD8X9N4P"`, `"evt_cancel_1"`,
		`"2026-11-21T09:12:00Z"`, `"2026-11-21T09:20:00Z"`).Replace(string(booked)))
	for _, order := range [][]string{{"untimed", "cancelled"}, {"cancelled", "untimed"}} {
		n := newNight(t)
		n.clock.t = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		for _, e := range order {
			n.event(map[string][]byte{"untimed": untimed, "cancelled": cancelled}[e])
		}
		n.at(time.Date(2026, 11, 24, 16, 30, 0, 0, time.UTC))
		for _, x := range n.sent(notification.SMS) {
			if x.Template == "gym.booking.confirmed/reminder" {
				t.Errorf("order %v: the reminder of a cancelled untimed booking went (its event_time %q)", order, x.Data.Get("event_time"))
			}
		}
	}
}
