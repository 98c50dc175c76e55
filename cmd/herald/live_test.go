package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/gymhq/herald/attendance"
	"github.com/gymhq/herald/channels/inapp"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/live"
	"go.uber.org/zap"
)

// liveBooking is a gym.booking.confirmed (or cancelled) of class cls at
// the roster's Studio 2, capacity 20, whose payload claims booked 3:
// herald must count for itself.
func liveBooking(typ, id, cls, booking string) []byte {
	b, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": id, "source": "booking-service", "type": typ, "time": "2026-12-04T07:00:00Z",
		"data": map[string]any{
			"booking_id": booking,
			"class": map[string]any{
				"id": cls, "name": "Spin 45", "starts_at": "2026-12-05T07:00:00Z", "ends_at": "2026-12-05T07:45:00Z",
				"time_zone": "Europe/London", "location": "Studio 2, Shoreditch", "capacity": 20, "booked": 3,
				"instructor": map[string]any{"id": "ins_live", "name": "Marco Rossi", "push_tokens": []string{"fcm_ins_live"}},
			},
			"member": map[string]any{"id": "mem_" + booking, "name": "Emma Clarke", "email": booking + "@example.com"},
		},
	})
	return b
}

// TestLiveAttendance runs the dashboard flow through the fleet on a real
// Redis: twenty bookings of a class of twenty, each published twice, tick
// the instructor's and the front desk's live figures to 20 (the payload's
// booked number is never used), and raise gym.class.busy exactly once, at
// the sixteenth, into both their feeds and the instructor's push; a replay
// of every event changes nothing.
func TestLiveAttendance(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	env, _ := newTestEnv(t, 3, redistest.Start(t))
	startFleet(t, env)
	ctx := context.Background()
	const cls = "cls_live_1"
	var stream [][]byte
	for i := 0; i < 20; i++ {
		stream = append(stream, liveBooking("gym.booking.confirmed", fmt.Sprint("evt_live_", i), cls, fmt.Sprint("bkg_live_", i)))
	}
	publishAll := func() {
		for _, v := range stream {
			if err := env.publishEvent(ctx, []byte(cls), v); err != nil {
				t.Fatal(err)
			}
		}
	}
	publishAll()
	publishAll() // every event twice

	figures := func(person string) live.Attendance {
		vs, err := env.fleet.feed.Live(ctx, person)
		if err != nil {
			t.Fatal(err)
		}
		var a live.Attendance
		_ = json.Unmarshal(vs[cls], &a)
		return a
	}
	for _, p := range []string{"ins_live", "desk_shoreditch"} {
		poll.Until(t, time.Minute, p+" sees 20 confirmed", func() bool { return figures(p).Confirmed == 20 })
	}
	busyItems := func(person string) int {
		items, _, err := env.fleet.feed.List(ctx, person, 200)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, it := range items {
			if it.EventType == live.BusyType {
				n++
			}
		}
		return n
	}
	for _, p := range []string{"ins_live", "desk_shoreditch"} {
		poll.Until(t, 30*time.Second, p+" warned of the busy class", func() bool { return busyItems(p) >= 1 })
	}
	waitDrained(t, env)

	publishAll() // a replay of the whole stream
	waitDrained(t, env)
	for _, p := range []string{"ins_live", "desk_shoreditch"} {
		if n := busyItems(p); n != 1 {
			t.Errorf("%s has %d busy warnings, want 1", p, n)
		}
		if a := figures(p); a.Confirmed != 20 || a.Capacity != 20 || !a.Busy {
			t.Errorf("%s sees %+v", p, a)
		}
	}
	if n := deliveredTo(env.outbox, "fcm_ins_live"); n != 1 {
		t.Errorf("the instructor got %d busy pushes, want 1", n)
	}
}

// TestBusyAcrossSIGKILL runs the fleet as a real process and SIGKILLs it
// right after the booking that makes the class busy was produced, then
// starts another and replays every booking: the class is busy once, in
// every feed and on the instructor's phone, and its figures are the
// bookings' count.
func TestBusyAcrossSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	env, redis, start := processFleet(t, 2)
	ctx := context.Background()
	const cls = "cls_kill_1"
	var stream [][]byte
	for i := 0; i < 20; i++ {
		stream = append(stream, liveBooking("gym.booking.confirmed", fmt.Sprint("evt_kill_", i), cls, fmt.Sprint("bkg_kill_", i)))
	}
	publish := func(vs [][]byte) {
		for _, v := range vs {
			if err := env.publishEvent(ctx, []byte(cls), v); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	first := start("kill-1")
	publish(stream[:16]) // the sixteenth makes the class busy
	time.Sleep(30 * time.Millisecond)
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	start("kill-2")
	publish(stream[16:])
	publish(stream) // and a replay of all of it

	feeds := feed.NewRedis(redis.Client(), feed.Limits{})
	poll.Until(t, 2*time.Minute, "the desk sees 20 confirmed", func() bool {
		vs, _ := feeds.Live(ctx, "desk_shoreditch")
		var a live.Attendance
		_ = json.Unmarshal(vs[cls], &a)
		return a.Confirmed == 20
	})
	waitDrained(t, env)
	for _, p := range []string{"ins_live", "desk_shoreditch"} {
		items, _, err := feeds.List(ctx, p, 200)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, it := range items {
			if it.EventType == live.BusyType {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s has %d busy warnings, want 1", p, n)
		}
	}
	if n := deliveredTo(env.outbox, "fcm_ins_live"); n != 1 {
		t.Errorf("the instructor got %d busy pushes, want 1", n)
	}
}

// TestIdempotencyOffKeepsFeedsInRedis: the measurement switch turns off
// the idempotency keys only; feeds and attendance stay in Redis, where
// every gateway reads them (they were in process memory, and the chaos
// test's in-app items vanished from the gateways' view).
func TestIdempotencyOffKeepsFeedsInRedis(t *testing.T) {
	redis := redistest.Start(t)
	cfg := config.Defaults()
	cfg.Role = config.Role(inapp.Name)
	cfg.RedisURL = redis.URL()
	cfg.Idempotency = config.IdempotencyOff
	f, closeAll, err := buildFleet(cfg, zap.NewNop(), fleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if _, ok := f.feed.(*feed.Redis); !ok {
		t.Errorf("feeds are %T, want *feed.Redis", f.feed)
	}
	if _, ok := f.attendance.(*attendance.Redis); !ok {
		t.Errorf("attendance is %T, want *attendance.Redis", f.attendance)
	}
}
