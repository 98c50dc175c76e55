package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/sinks"
)

// dayZone is an IANA zone where it is now early afternoon, so that quiet
// hours never defer what a test expects at once, whenever it runs.
func dayZone(now time.Time) string {
	off := (13 - now.UTC().Hour() + 24) % 24
	if off > 12 {
		off -= 24
	}
	if off == 0 {
		return "Etc/GMT"
	}
	return fmt.Sprintf("Etc/GMT%+d", -off) // Etc/GMT-3 is UTC+3
}

// booking is a gym.booking.confirmed or cancelled of booking for member
// (with one push token, fcm_<member>) in class cls starting at starts.
func booking(typ, id, cls, bookingID, member string, starts time.Time) []byte {
	zone := dayZone(time.Now())
	b, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": id, "source": "booking-service", "type": typ, "time": time.Now().UTC().Format(time.RFC3339),
		"data": map[string]any{
			"booking_id": bookingID,
			"class": map[string]any{
				"id": cls, "name": "Spin 45", "starts_at": starts.UTC().Format(time.RFC3339), "ends_at": starts.Add(45 * time.Minute).UTC().Format(time.RFC3339),
				"time_zone": zone, "location": "Studio 2, Shoreditch", "capacity": 20, "booked": 3,
			},
			"member": map[string]any{"id": member, "name": "Emma Clarke", "email": member + "@example.com",
				"time_zone": zone, "push_tokens": []string{"fcm_" + member}},
		},
	})
	return b
}

// reminders counts the scheduled reminder pushes to member's token.
func reminders(o *sinks.Outbox, member string) int {
	n := 0
	for _, d := range o.All() {
		if d.To == "fcm_"+member && strings.HasPrefix(d.Title, "Reminder:") {
			n++
		}
	}
	return n
}

// TestReminderAcrossSIGKILLAndRedisFlush runs the fleet as real
// processes. Four members book a class starting in two hours and a few
// seconds, so their reminders (send: class.starts_at - 2h) fall due a few
// seconds later. B cancels at once; then the process is SIGKILLed and
// another takes over, and C cancels; then Redis loses everything
// (FLUSHALL) and D cancels. A's reminder goes out once, at its time, from
// the schedule the dead process took; B's, C's and D's never do. E's
// class moves two seconds later after the FLUSHALL (the booking confirmed
// again with the new time): E gets one reminder, the moved class's, where
// before the stale one went out too.
func TestReminderAcrossSIGKILLAndRedisFlush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	env, redis, start := processFleet(t, 2)
	ctx := context.Background()
	const cls = "cls_rem_1"
	starts := time.Now().Add(2*time.Hour + 60*time.Second).Truncate(time.Second) // as RFC 3339 in the event
	due := starts.Add(-2 * time.Hour)
	publish := func(v []byte) {
		t.Helper()
		if err := env.publishEvent(ctx, []byte(cls), v); err != nil {
			t.Fatal(err)
		}
	}
	confirm := func(m string) {
		publish(booking("gym.booking.confirmed", "evt_rem_"+m, cls, "bkg_"+m, m, starts))
	}
	cancel := func(m string) {
		publish(booking("gym.booking.cancelled", "evt_rem_cancel_"+m, cls, "bkg_"+m, m, starts))
	}

	first := start("rem-1")
	for _, m := range []string{"mem_a", "mem_b", "mem_c", "mem_d", "mem_e"} {
		confirm(m)
	}
	cancel("mem_b") // in the same second as its booking
	poll.Until(t, 30*time.Second, "the confirmations are pushed", func() bool {
		return deliveredTo(env.outbox, "fcm_mem_a") >= 1 && deliveredTo(env.outbox, "fcm_mem_d") >= 1
	})
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	start("rem-2")
	cancel("mem_c")
	time.Sleep(time.Second)
	if err := redis.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	cancel("mem_d")
	moved := starts.Add(2 * time.Second)
	publish(booking("gym.booking.confirmed", "evt_rem_moved_mem_e", cls, "bkg_mem_e", "mem_e", moved))
	if time.Until(due) < 3*time.Second {
		t.Fatalf("the test took too long to reach the due time with room to spare (%v left)", time.Until(due))
	}
	if n := reminders(env.outbox, "mem_a"); n != 0 {
		t.Fatalf("A's reminder went out %v before its due time", time.Until(due))
	}
	poll.Until(t, time.Until(due)+30*time.Second, "A's reminder goes out", func() bool { return reminders(env.outbox, "mem_a") >= 1 })
	for _, d := range env.outbox.All() {
		if d.To == "fcm_mem_a" && strings.HasPrefix(d.Title, "Reminder:") {
			late := d.At.Sub(due)
			if late < 0 {
				t.Errorf("A's reminder went out %v before its due time", -late)
			}
			t.Logf("A's reminder went out %v after its due time (not asserted: wall-clock)", late)
		}
	}
	poll.Until(t, time.Until(due)+30*time.Second, "E's reminder goes out", func() bool { return reminders(env.outbox, "mem_e") >= 1 })
	time.Sleep(3 * time.Second) // room for a wrong one
	if n := reminders(env.outbox, "mem_a"); n != 1 {
		t.Errorf("A got %d reminders, want 1", n)
	}
	if n := reminders(env.outbox, "mem_e"); n != 1 {
		t.Errorf("E's class moved and E got %d reminders, want 1", n)
	}
	for _, d := range env.outbox.All() {
		if d.To == "fcm_mem_e" && strings.HasPrefix(d.Title, "Reminder:") && d.At.Before(moved.Add(-2*time.Hour)) {
			t.Errorf("E's reminder went out %v before the moved class's due time: the stale one", moved.Add(-2*time.Hour).Sub(d.At))
		}
	}
	for _, m := range []string{"mem_b", "mem_c", "mem_d"} {
		if n := reminders(env.outbox, m); n != 0 {
			t.Errorf("%s cancelled the booking and got %d reminders", m, n)
		}
	}
}
