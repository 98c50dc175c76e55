package templates_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

func london(t *testing.T, s string) time.Time {
	t.Helper()
	loc, _ := time.LoadLocation("Europe/London")
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func planAt(t *testing.T, s *templates.Set, typ, file string, now time.Time, opts templates.PlanOptions) map[notification.Channel]notification.Notification {
	t.Helper()
	ev := decode(t, sample(t, typ, file))
	ns, _, err := s.PlanWith(ev, now, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[notification.Channel]notification.Notification{}
	for _, n := range ns {
		if n.Template == typ {
			out[n.Channel] = n
		}
	}
	return out
}

type choices struct {
	from, to int
	set      bool
	zone     string
	allow    map[string]bool // "category/channel"
}

func (c choices) Allows(cat string, ch notification.Channel) (bool, bool) {
	v, ok := c.allow[cat+"/"+string(ch)]
	return v, ok
}
func (c choices) QuietHours() (int, int, bool) { return c.from, c.to, c.set }
func (c choices) TimeZone() string             { return c.zone }

// A class reminder due at 23:30 in the member's zone waits until 07:00
// there on the channels quiet hours cover (push); the in-app item is not
// an interruption and goes at once.
func TestQuietHoursDeferToTheirEnd(t *testing.T) {
	s := embedded(t)
	got := planAt(t, s, "gym.class.reminder", "member-with-push-en.json", london(t, "2026-12-04 23:30"), templates.PlanOptions{})
	push := got[notification.Push]
	if want := london(t, "2026-12-05 07:00"); !push.DueAt.Equal(want) || push.Deferred != notification.DeferQuietHours {
		t.Fatalf("push due %v (%s), want %v (quiet_hours)", push.DueAt, push.Deferred, want)
	}
	if in := got[notification.Channel("inapp")]; !in.DueAt.IsZero() {
		t.Fatalf("in-app deferred to %v; quiet hours cover push and sms", in.DueAt)
	}
	if push.TimeZone != "Europe/London" || push.Category != "reminders" {
		t.Fatalf("zone %q category %q", push.TimeZone, push.Category)
	}
	if p := planAt(t, s, "gym.class.reminder", "member-with-push-en.json", london(t, "2026-12-04 12:00"), templates.PlanOptions{})[notification.Push]; !p.DueAt.IsZero() {
		t.Fatalf("deferred at noon to %v", p.DueAt)
	}
	if p := planAt(t, s, "gym.class.reminder", "member-with-push-en.json", london(t, "2026-12-04 23:30"), templates.PlanOptions{NoQuietHours: true})[notification.Push]; !p.DueAt.IsZero() {
		t.Fatalf("HERALD_QUIET_HOURS=off still deferred to %v", p.DueAt)
	}
}

// Priority high goes through quiet hours.
func TestUrgentGoesThroughQuietHours(t *testing.T) {
	tree := shippedTree(t)
	r := string(tree["gym.class.reminder/routing.yaml"].Data)
	tree["gym.class.reminder/routing.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(r, "channels: [push]", "channels: [push]\n    priority: high", 1))}
	s, err := templates.Load(tree)
	if err != nil {
		t.Fatal(err)
	}
	if p := planAt(t, s, "gym.class.reminder", "member-with-push-en.json", london(t, "2026-12-04 23:30"), templates.PlanOptions{})[notification.Push]; !p.DueAt.IsZero() || p.Priority != notification.High {
		t.Fatalf("an urgent push was deferred to %v", p.DueAt)
	}
}

// A person's own quiet hours and zone replace the category's times.
func TestPersonalQuietHours(t *testing.T) {
	s := embedded(t)
	late := choices{from: 21 * 60, to: 8 * 60, set: true}
	opts := templates.PlanOptions{Choices: func(string) templates.Choices { return late }}
	p := planAt(t, s, "gym.class.reminder", "member-with-push-en.json", london(t, "2026-12-05 07:30"), opts)[notification.Push]
	if want := london(t, "2026-12-05 08:00"); !p.DueAt.Equal(want) {
		t.Fatalf("due %v, want %v (the person's 08:00)", p.DueAt, want)
	}
	off := choices{set: true} // from == to: the person turned them off
	opts.Choices = func(string) templates.Choices { return off }
	if p := planAt(t, s, "gym.class.reminder", "member-with-push-en.json", london(t, "2026-12-04 23:30"), opts)[notification.Push]; !p.DueAt.IsZero() {
		t.Fatalf("quiet hours turned off still deferred to %v", p.DueAt)
	}
	tokyo := choices{zone: "Asia/Tokyo"} // 23:30 London is 08:30 in Tokyo
	opts.Choices = func(string) templates.Choices { return tokyo }
	if p := planAt(t, s, "gym.class.reminder", "member-with-push-en.json", london(t, "2026-12-04 23:30"), opts)[notification.Push]; !p.DueAt.IsZero() || p.TimeZone != "Asia/Tokyo" {
		t.Fatalf("the person's own zone was not used: due %v zone %s", p.DueAt, p.TimeZone)
	}
}

// Stored choices decide over the event's preferences field.
func TestStoredChoicesDecide(t *testing.T) {
	s := embedded(t)
	c := choices{allow: map[string]bool{"reminders/push": false}}
	got := planAt(t, s, "gym.class.reminder", "member-with-push-en.json", london(t, "2026-12-04 12:00"),
		templates.PlanOptions{Choices: func(string) templates.Choices { return c }})
	if _, ok := got[notification.Push]; ok {
		t.Fatal("push planned though the person turned reminders' push off")
	}
	if _, ok := got[notification.SMS]; !ok {
		t.Fatal("no SMS fallback once push was turned off (only_if_unreachable)")
	}
}

// The booking's reminder is scheduled two hours before the class, keyed
// for cancellation by its booking and its class; one due inside quiet
// hours moves to their end; a booking made less than two hours ahead
// gets it at once; one for a class that has started gets none.
func TestScheduledReminder(t *testing.T) {
	s := embedded(t)
	ev := decode(t, sample(t, "gym.booking.confirmed", "member-no-push-en.json")) // class 2026-11-24 18:30Z, London
	plan := func(now time.Time) *notification.Notification { return bookingReminder(t, s, ev, now) }
	n := plan(time.Date(2026, 11, 21, 9, 12, 0, 0, time.UTC))
	if n == nil || n.Channel != notification.SMS {
		t.Fatalf("no SMS reminder for a member without push: %+v", n)
	}
	if want := time.Date(2026, 11, 24, 16, 30, 0, 0, time.UTC); !n.DueAt.Equal(want) || n.Deferred != notification.DeferSchedule {
		t.Fatalf("due %v (%s), want %v", n.DueAt, n.Deferred, want)
	}
	if len(n.CancelKeys) != 2 || !strings.Contains(strings.Join(n.CancelKeys, " "), "booking_id=bkg_3VN8QW2E") {
		t.Fatalf("cancel keys %v", n.CancelKeys)
	}
	// Booked 90 minutes ahead: due already, and still through the
	// scheduler (its cancel keys), which fires it at once unless the
	// booking's cancellation was read first.
	if n := plan(time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)); n == nil || n.DueAt.After(time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)) || len(n.CancelKeys) != 2 {
		t.Fatalf("booked 90 minutes ahead: %+v, want it due now, cancellable", n)
	}
	if !n.ExpiresAt.Equal(time.Date(2026, 11, 24, 18, 30, 0, 0, time.UTC)) {
		t.Fatalf("expires %v, want the class start", n.ExpiresAt)
	}
	if n := plan(time.Date(2026, 11, 24, 18, 31, 0, 0, time.UTC)); n != nil {
		t.Fatalf("a reminder for a class that has started: %+v", n)
	}
	cancel := decode(t, sample(t, "gym.booking.cancelled", "member-en-with-reason.json"))
	keys := s.Cancels(cancel)
	if len(keys) != 2 || !strings.HasPrefix(keys[0], "gym.booking.confirmed/reminder|booking_id=") || !strings.HasPrefix(keys[1], "gym.booking.confirmed/reminder|untimed:booking_id=") {
		t.Fatalf("a booking's cancellation withdraws %v", keys)
	}
	// The booking confirmed again replaces its reminder (schedule:
	// replace: booking_id), under the key its cancellation withdraws: one
	// key each message carries for both.
	bookingKey := templates.CancelKey("gym.booking.confirmed/reminder", "booking_id", "bkg_3VN8QW2E")
	if got := s.Replaces(ev); len(got) != 1 || got[0] != bookingKey || !slices.Contains(n.CancelKeys, got[0]) {
		t.Fatalf("the confirmation replaces under %v; its reminder's keys are %v", got, n.CancelKeys)
	}
	if got := s.Replaces(cancel); got != nil {
		t.Fatalf("a cancellation replaces under %v", got)
	}
	// An event without a time cannot be ordered: it neither replaces nor
	// carries the key by which it would be replaced, but that key's
	// untimed form, which a cancellation of the booking withdraws too (an
	// outside tester's untimed confirmation was withdrawn by an earlier
	// timed one's replacement, leaving only the stale reminder).
	untimed := *ev
	untimed.Time = time.Time{}
	if got := s.Replaces(&untimed); got != nil {
		t.Fatalf("an event without a time, which cannot be ordered, replaces under %v", got)
	}
	u := bookingReminder(t, s, &untimed, time.Date(2026, 11, 21, 9, 12, 0, 0, time.UTC))
	untimedKey := templates.UntimedKey("gym.booking.confirmed/reminder", "booking_id", "bkg_3VN8QW2E")
	if u == nil || len(u.CancelKeys) != 2 || slices.Contains(u.CancelKeys, bookingKey) || !slices.Contains(u.CancelKeys, untimedKey) {
		t.Fatalf("an untimed event's reminder has keys %+v, want the booking's untimed key and the class's", u)
	}
	booking := *cancel
	booking.Data = map[string]any{"booking_id": "bkg_3VN8QW2E"}
	if got := s.Cancels(&booking); !slices.Equal(got, []string{bookingKey, untimedKey}) {
		t.Fatalf("the booking's cancellation withdraws %q, want both forms of its key", got)
	}
}

// Lint catches what would fail at 3 a.m.
func TestScheduleLint(t *testing.T) {
	for _, tc := range []struct{ name, file, from, to, want string }{
		{"missing field", "gym.booking.confirmed/routing.yaml", "send: class.starts_at - 2h", "send: class.begins_at - 2h", "no sample of gym.booking.confirmed has an RFC 3339 time at data.class.begins_at"},
		{"unknown cancel event", "gym.booking.confirmed/routing.yaml", "event: gym.booking.cancelled", "event: gym.booking.canceled", "cancellation can never match"},
		{"cancel field", "gym.booking.confirmed/routing.yaml", "match: booking_id}", "match: booking_ref}", "no sample of gym.booking.cancelled has data.booking_ref"},
		{"bad send", "gym.booking.confirmed/routing.yaml", "send: class.starts_at - 2h", "send: two hours before", "is not \"<data path>"},
		{"cap of zero", "categories.yaml", "{channel: push, max: 3", "{channel: push, max: 0", "a cap of zero"},
		{"undeclared category", "gym.class.reminder/routing.yaml", "category: reminders", "category: remindres", "category \"remindres\" is not declared"},
		{"expires field", "gym.class.reminder/routing.yaml", "expires: class.starts_at   #", "expires: class.begins_at   #", `expires "class.begins_at": no sample of gym.class.reminder has an RFC 3339 time at data.class.begins_at`},
		{"bad expires beside a schedule", "gym.booking.confirmed/routing.yaml", "    schedule: &reminder\n", "    expires: at the start\n    schedule: &reminder\n", `expires "at the start" is not "<data path>`},
		{"bad expires", "gym.class.reminder/routing.yaml", "expires: class.starts_at   #", "expires: at the start   #", `expires "at the start" is not "<data path>`},
		{"expires before send", "gym.booking.confirmed/routing.yaml", "    schedule: &reminder\n", "    expires: class.starts_at - 3h\n    schedule: &reminder\n", `expires "class.starts_at - 3h0m0s" is not after schedule send "class.starts_at - 2h0m0s"`},
		{"cancel_on beside a schedule", "gym.booking.confirmed/routing.yaml", "    schedule: &reminder\n", "    cancel_on: [{event: gym.booking.cancelled, match: booking_id}]\n    schedule: &reminder\n", "cancel_on belongs inside schedule"},
		{"unscheduled cancel field", "gym.class.reminder/routing.yaml", "match: class.id}", "match: class.ref}", "no sample of gym.class.cancelled has data.class.ref"},
		{"too many cancellations", "gym.class.reminder/routing.yaml", "    cancel_on: *class_cancelled", "    cancel_on: [" + manyCancels(65) + "]", "cancel_on lists 65 cancellations, at most 64"},
		{"expired in every sample", "gym.class.reminder/routing.yaml", "expires: class.starts_at   #", "expires: class.starts_at - 48h   #", "its expires: class.starts_at - 48h0m0s has passed at every sample's time"},
		{"replace field", "gym.booking.confirmed/routing.yaml", "replace: booking_id ", "replace: booking_ref ", "schedule replace booking_ref: no sample of gym.booking.confirmed has a text or number at data.booking_ref"},
		{"replace an object", "gym.booking.confirmed/routing.yaml", "replace: booking_id ", "replace: class ", "no sample of gym.booking.confirmed has a text or number at data.class (an object or a list names nothing)"},
		{"bad replace", "gym.booking.confirmed/routing.yaml", "replace: booking_id ", "replace: booking id ", `replace "booking id" is not a dot path`},
		{"too many keys with replace", "gym.booking.confirmed/routing.yaml", "      cancel_on:\n        - {event: gym.booking.cancelled, match: booking_id}   # the member cancelled this booking\n        - {event: gym.class.cancelled, match: class.id}       # the gym cancelled the class\n",
			"      cancel_on: [" + manyCancels(64) + "]\n", "cancel_on and replace make 65 keys, at most 64"},
		{"too many keys for the cancelling event", "gym.booking.confirmed/routing.yaml", "      cancel_on:\n        - {event: gym.booking.cancelled, match: booking_id}   # the member cancelled this booking\n        - {event: gym.class.cancelled, match: class.id}       # the gym cancelled the class\n",
			"      cancel_on: [{event: gym.booking.cancelled, match: booking_id}, " + strings.ReplaceAll(manyCancels(63), "gym.class.cancelled", "gym.booking.cancelled") + "]\n",
			"gym.booking.cancelled cancels by 65 keys (cancel_on of the scheduled rules, and the untimed form of each that is also a replace path), at most 64"},
		{"bad quiet hours", "categories.yaml", `from: "22:00", to: "07:00", channels: [push, sms]}`, `from: "25:00", to: "07:00"}`, "not a time of day"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := shippedTree(t)
			b := string(tree[tc.file].Data)
			if !strings.Contains(b, tc.from) {
				t.Fatalf("%s lacks %q", tc.file, tc.from)
			}
			tree[tc.file] = &fstest.MapFile{Data: []byte(strings.Replace(b, tc.from, tc.to, 1))}
			_, err := templates.Load(tree)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v; want a problem containing %q", err, tc.want)
			}
		})
	}
}

// Window.End: the next local end, even across a daylight-saving change.
func TestWindowEndAcrossDST(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	w := &templates.Window{From: 22 * 60, To: 2*60 + 30}
	// 8 March 2026: clocks go from 02:00 to 03:00; 02:30 does not exist.
	at := time.Date(2026, 3, 8, 1, 0, 0, 0, ny)
	end := w.End(at, ny)
	if !end.After(at) || end.Sub(at) > 3*time.Hour {
		t.Fatalf("end %v for %v", end, at)
	}
	if !w.Contains(time.Date(2026, 3, 7, 23, 0, 0, 0, ny), ny) || w.Contains(time.Date(2026, 3, 7, 12, 0, 0, 0, ny), ny) {
		t.Fatal("Contains is wrong across midnight")
	}
}

// Window.End and Start on the days daylight-saving time begins, in zones
// west and east of UTC and with jumps at midnight and of half an hour: the
// end is the first instant the window no longer holds, never a time whose
// clock still reads inside it. An outside tester's reminder due at 01:20 in
// New York on 14 March 2027, inside quiet hours 01:00-02:30, was held until
// 01:30 EST (time.Date's reading of the 02:30 that day skips) and went out
// inside them.
func TestWindowEdgesOnDaylightSavingJumps(t *testing.T) {
	for _, tc := range []struct {
		zone string
		day  string // a day whose clocks jump forward
	}{
		{"America/New_York", "2027-03-14"}, {"America/Chicago", "2027-03-14"}, {"America/Los_Angeles", "2026-03-08"},
		{"Europe/London", "2027-03-28"}, {"Europe/Berlin", "2027-03-28"}, {"Australia/Lord_Howe", "2026-10-04"},
		{"America/Havana", "2026-03-08"}, {"America/Santiago", "2026-09-06"},
	} {
		loc, err := time.LoadLocation(tc.zone)
		if err != nil {
			t.Fatal(err)
		}
		day, err := time.ParseInLocation("2006-01-02", tc.day, loc)
		if err != nil {
			t.Fatal(err)
		}
		// Every window edge on the quarter hour, and the times of day
		// around them: the end of each window holding t is the first
		// instant it no longer holds, and its start the last at which
		// it began.
		for from := 0; from < 24*60; from += 15 {
			for _, length := range []int{30, 90, 9 * 60} {
				w := &templates.Window{From: from, To: (from + length) % (24 * 60)}
				for at := day.Add(-2 * time.Hour); at.Before(day.Add(28 * time.Hour)); at = at.Add(20 * time.Minute) {
					if !w.Contains(at, loc) {
						continue
					}
					end := w.End(at, loc)
					if !end.After(at) || w.Contains(end, loc) || !w.Contains(end.Add(-time.Second), loc) {
						t.Fatalf("%s %s-%s at %v: end %v (contains it: %v, contains a second before: %v)", tc.zone,
							clock(w.From), clock(w.To), at.In(loc), end.In(loc), w.Contains(end, loc), w.Contains(end.Add(-time.Second), loc))
					}
					if start := w.Start(at, loc); start.After(at) || !w.Contains(start, loc) || w.Contains(start.Add(-time.Second), loc) {
						t.Fatalf("%s %s-%s at %v: start %v", tc.zone, clock(w.From), clock(w.To), at.In(loc), start.In(loc))
					}
				}
			}
		}
	}
	ny, _ := time.LoadLocation("America/New_York")
	w := &templates.Window{From: 60, To: 150}
	at := time.Date(2027, 3, 14, 6, 20, 0, 0, time.UTC) // 01:20 EST
	if end, want := w.End(at, ny), time.Date(2027, 3, 14, 7, 0, 0, 0, time.UTC); !end.Equal(want) {
		t.Fatalf("quiet hours 01:00-02:30 on 14 March 2027 in New York end at %v, want %v (03:00 EDT)", end.In(ny), want.In(ny))
	}
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// Quiet hours never push a reminder past the class it reminds of (the
// outside tester's 06:30 class got its reminder at 07:00): it goes just
// before the window instead, or at once when that has passed.
func TestQuietHoursNeverPastTheClass(t *testing.T) {
	tree := shippedTree(t)
	s, err := templates.Load(tree)
	if err != nil {
		t.Fatal(err)
	}
	m := sample(t, "gym.booking.confirmed", "member-en.json") // Emma, London, push
	at(m, "data.class")["starts_at"], at(m, "data.class")["ends_at"] = "2026-12-05T06:30:00Z", "2026-12-05T07:15:00Z"
	ev := decode(t, m)
	reminder := func(now time.Time) *notification.Notification { return bookingReminder(t, s, ev, now) }
	// Booked at 15:00 the day before: due 04:30, inside 22:00-07:00, whose
	// end is after the class; it goes at 21:59 the evening before.
	n := reminder(london(t, "2026-12-04 15:00"))
	if want := london(t, "2026-12-04 21:59"); n == nil || !n.DueAt.Equal(want) {
		t.Fatalf("reminder due %v, want %v", n.DueAt, want)
	}
	// Booked at 23:00: the evening has passed; it goes at once.
	now := london(t, "2026-12-04 23:00")
	if n := reminder(now); n == nil || !n.DueAt.Equal(now) {
		t.Fatalf("reminder due %v, want at once (%v)", n.DueAt, now)
	}
}

// A gym.class.reminder event is not a scheduled rule, so before expires:
// the planner did not know its class's time: planned at 04:30 London for a
// 06:40 class, the push waited for the end of quiet hours (07:00), after
// the class had started (an outside tester's find). Its push and SMS rules
// now expire at the class's start.
func TestReminderEventNeverAfterTheClass(t *testing.T) {
	s := embedded(t)
	plan := func(m map[string]any, now time.Time) (map[notification.Channel]notification.Notification, []templates.Refusal) {
		t.Helper()
		ns, refused, err := s.PlanWith(decode(t, m), now, templates.PlanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[notification.Channel]notification.Notification{}
		for _, n := range ns {
			out[n.Channel] = n
		}
		return out, refused
	}
	m := sample(t, "gym.class.reminder", "member-with-push-en.json") // Emma, London, push
	at(m, "data.class")["starts_at"], at(m, "data.class")["ends_at"] = "2026-12-05T06:40:00Z", "2026-12-05T07:25:00Z"
	class := london(t, "2026-12-05 06:40")

	now := london(t, "2026-12-05 04:30")
	got, _ := plan(m, now)
	push, ok := got[notification.Push]
	if !ok || !push.DueAt.Equal(now) || !push.ExpiresAt.Equal(class) {
		t.Fatalf("push at 04:30 for a 06:40 class: planned %v, due %v, expires %v; want due at once (%v), expiring %v", ok, push.DueAt, push.ExpiresAt, now, class)
	}
	// At 23:30 the evening before, it still waits for 07:00? No: the
	// class starts before then, and the evening has passed: at once.
	now = london(t, "2026-12-04 23:30")
	if got, _ = plan(m, now); !got[notification.Push].DueAt.Equal(now) {
		t.Fatalf("push at 23:30 for a 06:40 class due %v, want at once", got[notification.Push].DueAt)
	}
	// Planned once the class has started (a backlog after an outage):
	// no push and no SMS; the in-app item, which interrupts nobody, stays.
	got, _ = plan(m, class)
	if _, ok := got[notification.Push]; ok {
		t.Fatal("a push for a class that has started")
	}
	if _, ok := got[notification.SMS]; ok {
		t.Fatal("an SMS for a class that has started")
	}
	if _, ok := got[notification.Channel("inapp")]; !ok {
		t.Fatal("no in-app item")
	}
}

// A rule's expires: names a time the event must carry; an event without it
// has its messages of that rule refused as invalid (to the DLQ, naming the
// field), and its other rules planned.
func TestExpiresWithoutItsTime(t *testing.T) {
	tree := shippedTree(t)
	file := "gym.class.reminder/routing.yaml"
	tree[file] = &fstest.MapFile{Data: []byte(strings.ReplaceAll(string(tree[file].Data), "expires: class.starts_at", "expires: class.doors_at"))}
	for _, name := range []string{"member-with-push-en.json", "member-without-push-es.json"} { // lint wants a sample with it
		f := "gym.class.reminder/samples/" + name
		tree[f] = &fstest.MapFile{Data: []byte(strings.Replace(string(tree[f].Data), `"ends_at":`, `"doors_at": "2030-12-05T08:50:00Z", "ends_at":`, 1))}
	}
	s, err := templates.Load(tree)
	if err != nil {
		t.Fatal(err)
	}
	m := sample(t, "gym.class.reminder", "member-with-push-en.json") // without doors_at
	ns, refused, err := s.PlanWith(decode(t, m), london(t, "2030-12-05 08:00"), templates.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || ns[0].Channel != "inapp" {
		t.Fatalf("planned %+v, want the in-app item alone", ns)
	}
	// Both rules that expire are refused (the SMS fallback's too, as a
	// scheduled rule's is when its time is missing).
	if len(refused) != 2 {
		t.Fatalf("refused %+v, want the push and SMS rules", refused)
	}
	for _, r := range refused {
		if !strings.Contains(r.Err.Error(), "expires: data.class.doors_at is missing; the rule expires at class.doors_at") {
			t.Fatalf("refused %s: %v", r.Channel, r.Err)
		}
	}
}

// One mistake in categories.yaml is one problem, at its line: not also a
// "not declared" for every rule naming the file's categories (the outside
// tester got ten problems for a cap of zero, none with a line).
func TestCategoriesProblemIsOneAtItsLine(t *testing.T) {
	tree := shippedTree(t)
	b := string(tree["categories.yaml"].Data)
	tree["categories.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(b, "{channel: push, max: 3", "{channel: push, max: 0", 1))}
	_, probs, err := templates.Inspect(tree)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for i, l := range strings.Split(b, "\n") {
		if strings.Contains(l, "{channel: push, max: 3") {
			want = i + 1
		}
	}
	if len(probs) != 1 || probs[0].File != "categories.yaml" || probs[0].Line != want {
		t.Fatalf("problems %v; want one, categories.yaml:%d", probs, want)
	}
	delete(tree, "categories.yaml")
	_, probs, _ = templates.Inspect(tree)
	if len(probs) == 0 || !strings.Contains(probs[0].String(), "the tree has no categories.yaml") {
		t.Fatalf("without categories.yaml: %v", probs)
	}
}

// bookingReminder plans ev at now and returns its scheduled reminder, nil
// when there is none.
func bookingReminder(t *testing.T, s *templates.Set, ev *events.Event, now time.Time) *notification.Notification {
	t.Helper()
	ns, _, err := s.PlanWith(ev, now, templates.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ns {
		if ns[i].Template == "gym.booking.confirmed/reminder" {
			return &ns[i]
		}
	}
	return nil
}

// manyCancels is n distinct cancel_on entries, as YAML flow mappings.
func manyCancels(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{event: gym.class.cancelled, match: class.f%d}", i)
	}
	return b.String()
}

// QuietEnd answers a channel worker holding a message back for its cap:
// the end of the quiet hours that hold at a time for the notification, as
// planning would have deferred it, in its own zone and with the person's
// own times; zero outside them, on a channel they do not cover, and for
// priority high.
func TestQuietEndForACapsRelease(t *testing.T) {
	s := embedded(t)
	push := planAt(t, s, "gym.class.reminder", "member-with-push-en.json", london(t, "2026-12-04 12:00"), templates.PlanOptions{})[notification.Push]
	if push.Template == "" {
		t.Fatal("no push planned")
	}
	if end, want := s.QuietEnd(&push, nil, london(t, "2026-12-04 23:30")), london(t, "2026-12-05 07:00"); !end.Equal(want) {
		t.Fatalf("quiet end %v, want %v", end, want)
	}
	if end := s.QuietEnd(&push, nil, london(t, "2026-12-04 12:00")); !end.IsZero() {
		t.Fatalf("quiet end %v at noon, want none", end)
	}
	own := choices{from: 13 * 60, to: 14 * 60, set: true}
	if end, want := s.QuietEnd(&push, own, london(t, "2026-12-04 13:30")), london(t, "2026-12-04 14:00"); !end.Equal(want) {
		t.Fatalf("quiet end with the person's own 13:00-14:00: %v, want %v", end, want)
	}
	if end := s.QuietEnd(&push, choices{from: 60, to: 60, set: true}, london(t, "2026-12-04 23:30")); !end.IsZero() {
		t.Fatalf("quiet end %v for a person who turned quiet hours off", end)
	}
	ktm, err := time.LoadLocation("Asia/Kathmandu")
	if err != nil {
		t.Fatal(err)
	}
	far := push
	far.TimeZone = "Asia/Kathmandu"
	if end, want := s.QuietEnd(&far, nil, time.Date(2026, 12, 4, 23, 0, 0, 0, ktm)), time.Date(2026, 12, 5, 7, 0, 0, 0, ktm); !end.Equal(want) {
		t.Fatalf("quiet end in Kathmandu %v, want %v", end, want)
	}
	// The zone the person chose since the plan counts, as at planning.
	if end, want := s.QuietEnd(&push, choices{zone: "Asia/Kathmandu"}, time.Date(2026, 12, 4, 23, 0, 0, 0, ktm)), time.Date(2026, 12, 5, 7, 0, 0, 0, ktm); !end.Equal(want) {
		t.Fatalf("quiet end in the chosen zone %v, want %v", end, want)
	}
	high := push
	high.Priority = notification.High
	if end := s.QuietEnd(&high, nil, london(t, "2026-12-04 23:30")); !end.IsZero() {
		t.Fatalf("quiet end %v for priority high", end)
	}
	in := planAt(t, s, "gym.class.reminder", "member-with-push-en.json", london(t, "2026-12-04 12:00"), templates.PlanOptions{})[notification.Channel("inapp")]
	if end := s.QuietEnd(&in, nil, london(t, "2026-12-04 23:30")); !end.IsZero() {
		t.Fatalf("quiet end %v for in-app, which quiet hours do not cover", end)
	}
}

// A required category is never switched off entirely: a person whose
// choices turn off every channel a booking confirmation's rules send on
// (an outside tester kept only SMS, which they do not use, and got no
// confirmation at all) still gets each rule's message once, on the first
// of its channels that reaches them. So does one whose event's own
// preferences turn everything off. A category that is not required stays
// off.
func TestRequiredCategoryNeverSwitchedOffEntirely(t *testing.T) {
	s := embedded(t)
	now := london(t, "2026-12-04 12:00")
	off := choices{allow: map[string]bool{"transactional/email": false, "transactional/push": false, "transactional/inapp": false,
		"transactional/sms": true, "reminders/push": false, "reminders/sms": false}}
	got := planAt(t, s, "gym.booking.confirmed", "member-en.json", now, templates.PlanOptions{Choices: func(string) templates.Choices { return off }})
	confirmation := map[notification.Channel]bool{}
	for ch, n := range got {
		if n.Category == "transactional" {
			confirmation[ch] = true
		}
	}
	all, _, err := s.PlanWith(decode(t, sample(t, "gym.booking.confirmed", "member-en.json")), now,
		templates.PlanOptions{Choices: func(string) templates.Choices { return off }})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		if n.Category == "reminders" {
			t.Errorf("a reminder on %s, which the person turned off (reminders are not required)", n.Channel)
		}
	}
	if !confirmation[notification.Email] || confirmation[notification.Push] || !confirmation[notification.Channel("inapp")] {
		t.Fatalf("transactional messages on %v; want the email (the first of email, push) and the in-app item", confirmation)
	}

	m := sample(t, "gym.booking.confirmed", "member-en.json")
	at(m, "data.member")["preferences"] = map[string]any{"email": false, "push": false, "inapp": false, "sms": false}
	ns, _, err := s.PlanWith(decode(t, m), now, templates.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, x := range ns {
		if x.Category == "transactional" && x.Channel != notification.Channel("webhook") {
			n++
		}
	}
	if n == 0 {
		t.Fatal("no transactional message for a member whose event turns every channel off")
	}

	// Choices that leave a channel of the rule on are followed as they are.
	pushOnly := choices{allow: map[string]bool{"transactional/email": false}}
	got = planAt(t, s, "gym.booking.confirmed", "member-en.json", now, templates.PlanOptions{Choices: func(string) templates.Choices { return pushOnly }})
	if _, ok := got[notification.Email]; ok {
		t.Fatal("an email to a person who turned transactional email off and kept push")
	}
	if _, ok := got[notification.Push]; !ok {
		t.Fatal("no push for a person who kept transactional push")
	}
}
