package live_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/attendance"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/internal/logtest"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/live"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

// capture is a Publisher that records, and fails the next fail calls.
type capture struct {
	mu   sync.Mutex
	msgs []queue.Message
	fail int
}

func (c *capture) Publish(_ context.Context, ms ...queue.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail > 0 {
		c.fail--
		return errors.New("broker unavailable")
	}
	c.msgs = append(c.msgs, ms...)
	return nil
}

func (c *capture) on(topic string) []queue.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []queue.Message
	for _, m := range c.msgs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

var t0 = time.Date(2026, 12, 4, 7, 0, 0, 0, time.UTC)

// event builds a booking event of class cls (capacity 10).
func event(typ, id, cls, booking string) *queue.Message {
	data := map[string]any{
		"class": map[string]any{
			"id": cls, "name": "Spin 45", "starts_at": "2026-12-05T07:00:00Z", "ends_at": "2026-12-05T07:45:00Z",
			"time_zone": "Europe/London", "location": "Studio 2, Shoreditch", "capacity": 10, "booked": 999,
			"instructor": map[string]any{"id": "ins_marco", "name": "Marco Rossi"},
		},
	}
	if typ == "gym.class.cancelled" {
		data["attendees"] = []any{map[string]any{"id": "mem_a", "name": "A", "email": "a@example.com"}}
		data["reason"] = "x"
	} else {
		data["member"] = map[string]any{"id": "mem_a", "name": "A", "email": "a@example.com"}
		data["booking_id"] = booking
	}
	b, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": "booking-service", "type": typ,
		"time": "2026-12-04T07:00:00Z", "data": data})
	return &queue.Message{Topic: "gym.bookings.v1", Key: []byte(cls), Value: b}
}

func stores(t *testing.T, f func(t *testing.T, s attendance.Store)) {
	t.Run("memory", func(t *testing.T) { f(t, attendance.NewMemory()) })
	t.Run("redis", func(t *testing.T) { f(t, attendance.NewRedis(redistest.Start(t).Client(), "")) })
}

func aggregator(s attendance.Store, pub queue.Publisher) *live.Aggregator {
	return &live.Aggregator{Store: s, Publisher: pub, Now: func() time.Time { return t0 },
		Threshold: func() (float64, bool) { return 0.8, true }}
}

func busyIDs(pub *capture) []string {
	var ids []string
	for _, m := range pub.on(topics.Derived) {
		var ev struct{ ID, Type string }
		_ = json.Unmarshal(m.Value, &ev)
		ids = append(ids, ev.ID)
	}
	return ids
}

// TestBusyOncePerCrossing: ten bookings of a class of ten, each delivered
// twice and the whole stream replayed, shuffled, raise gym.class.busy
// exactly once, at the eighth; two cancellations re-arm it, and the next
// crossing raises the second.
func TestBusyOncePerCrossing(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		ctx := context.Background()
		pub := &capture{}
		a := aggregator(s, pub)
		var stream []*queue.Message
		for i := 0; i < 10; i++ {
			stream = append(stream, event("gym.booking.confirmed", fmt.Sprint("e", i), "cls_1", fmt.Sprint("b", i)))
		}
		for i, m := range stream {
			for k := 0; k < 2; k++ { // every record delivered twice
				if err := a.Handle(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if got := busyIDs(pub); (i < 7 && len(got) != 0) || (i >= 7 && len(got) != 1) {
				t.Fatalf("after booking %d: busy events %v", i+1, got)
			}
		}
		replay := append([]*queue.Message(nil), stream...)
		rand.Shuffle(len(replay), func(i, j int) { replay[i], replay[j] = replay[j], replay[i] })
		for _, m := range replay {
			if err := a.Handle(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		if got := busyIDs(pub); len(got) != 1 || got[0] != "busy_cls_1_1" {
			t.Fatalf("after the replay: busy events %v, want [busy_cls_1_1]", got)
		}
		// Down to 7 (below 8) re-arms; back to 8 crosses again.
		for _, b := range []string{"b0", "b1", "b2"} {
			_ = a.Handle(ctx, event("gym.booking.cancelled", "c"+b, "cls_1", b))
		}
		_ = a.Handle(ctx, event("gym.booking.confirmed", "e10", "cls_1", "b10"))
		if got := busyIDs(pub); len(got) != 2 || got[1] != "busy_cls_1_2" {
			t.Fatalf("after falling below and rising again: %v", got)
		}
		// A late redelivery of a cancelled booking's confirmation adds nothing.
		_ = a.Handle(ctx, stream[0])
		st, _ := s.Get(ctx, "cls_1")
		if st.Confirmed != 8 {
			t.Fatalf("confirmed = %d, want 8", st.Confirmed)
		}
		// Every change published its figures, in version order, the booked
		// number of the payload (999) never used.
		ups := pub.on(topics.Live)
		var last live.Attendance
		if err := json.Unmarshal(ups[len(ups)-1].Value, &last); err != nil || last.Confirmed != 8 || last.Capacity != 10 || !last.Busy || last.InstructorID != "ins_marco" {
			t.Fatalf("last update %s: %v", ups[len(ups)-1].Value, err)
		}
		if int64(len(ups)) != last.Version {
			t.Fatalf("%d updates for %d changes", len(ups), last.Version)
		}
	})
}

// TestCrashBetweenUpdateAndPublish: the publish fails after the store
// changed (a crash, a broker outage); the redelivered record publishes
// the busy event and the figures it missed, once.
func TestCrashBetweenUpdateAndPublish(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		ctx := context.Background()
		pub := &capture{}
		a := aggregator(s, pub)
		for i := 0; i < 7; i++ {
			_ = a.Handle(ctx, event("gym.booking.confirmed", fmt.Sprint("e", i), "cls_1", fmt.Sprint("b", i)))
		}
		eighth := event("gym.booking.confirmed", "e7", "cls_1", "b7")
		pub.fail = 1
		if err := a.Handle(ctx, eighth); err == nil {
			t.Fatal("a failed publish was not an error (the record would be committed)")
		}
		if got := busyIDs(pub); len(got) != 0 {
			t.Fatalf("busy published despite the failure: %v", got)
		}
		for k := 0; k < 3; k++ { // the redelivery, and later duplicates
			if err := a.Handle(ctx, eighth); err != nil {
				t.Fatal(err)
			}
		}
		if got := busyIDs(pub); len(got) != 1 {
			t.Fatalf("busy events after the redelivery: %v", got)
		}
		if n := len(pub.on(topics.Live)); n != 8 {
			t.Fatalf("%d attendance updates, want 8", n)
		}
	})
}

// TestClosedClassIsNeverBusy: a class cancelled before it fills raises
// nothing, and its figures say closed.
func TestClosedClassIsNeverBusy(t *testing.T) {
	stores(t, func(t *testing.T, s attendance.Store) {
		ctx := context.Background()
		pub := &capture{}
		a := aggregator(s, pub)
		_ = a.Handle(ctx, event("gym.booking.confirmed", "e0", "cls_1", "b0"))
		_ = a.Handle(ctx, event("gym.class.cancelled", "x", "cls_1", ""))
		for i := 1; i < 10; i++ {
			_ = a.Handle(ctx, event("gym.booking.confirmed", fmt.Sprint("e", i), "cls_1", fmt.Sprint("b", i)))
		}
		if got := busyIDs(pub); len(got) != 0 {
			t.Fatalf("busy events for a cancelled class: %v", got)
		}
		ups := pub.on(topics.Live)
		var last live.Attendance
		_ = json.Unmarshal(ups[len(ups)-1].Value, &last)
		if !last.Closed || last.Confirmed != 1 {
			t.Fatalf("last figures %+v", last)
		}
	})
}

// TestFanout: an update reaches the instructor and the location's front
// desk as a live value; an older version after a newer one changes
// nothing.
func TestFanout(t *testing.T) {
	fd := feed.NewMemory(feed.Limits{})
	f := &live.Fanout{Feed: fd, Staff: func(role, loc string) []string {
		if role == live.FrontDeskRole && loc == "Studio 2, Shoreditch" {
			return []string{"desk_shoreditch"}
		}
		return nil
	}}
	ctx := context.Background()
	for _, v := range []int64{2, 1} {
		b, _ := json.Marshal(live.Attendance{Type: "attendance", ClassID: "cls_1", Location: "Studio 2, Shoreditch", InstructorID: "ins_marco", Confirmed: int(v), Version: v})
		if err := f.Handle(ctx, &queue.Message{Topic: topics.Live, Value: b}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"ins_marco", "desk_shoreditch"} {
		got, _ := fd.Live(ctx, p)
		var a live.Attendance
		if err := json.Unmarshal(got["cls_1"], &a); err != nil || a.Version != 2 {
			t.Fatalf("%s sees %s", p, got["cls_1"])
		}
	}
}

// TestLongClassName: an event may name a class with 10,000 characters; its
// figures still reach the dashboards (they were refused by the feed's
// 16 KiB bound, silently), with the name cut.
func TestLongClassName(t *testing.T) {
	pub := &capture{}
	a := aggregator(attendance.NewMemory(), pub)
	m := event("gym.booking.confirmed", "e0", "cls_long", "b0")
	long := strings.Repeat("Ü", 10_000)
	m.Value = []byte(strings.Replace(string(m.Value), `"Spin 45"`, `"`+long+`"`, 1))
	if err := a.Handle(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	fd := feed.NewMemory(feed.Limits{})
	f := &live.Fanout{Feed: fd, Staff: func(string, string) []string { return []string{"desk_1"} }}
	for _, u := range pub.on(topics.Live) {
		if err := f.Handle(context.Background(), &u); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := fd.Live(context.Background(), "desk_1")
	var v live.Attendance
	if err := json.Unmarshal(got["cls_long"], &v); err != nil || v.Confirmed != 1 || len([]rune(v.ClassName)) != 200 {
		t.Fatalf("desk sees %.80q: %v", got["cls_long"], err)
	}
}

// TestConflatedViewsEndAsWithout: the dashboards' consumer passes over an
// attendance record when the next later delivered record of its class has
// the same scope and a higher version, as live.Version reads them
// (kafkarun.ConsumerConfig.Conflate). Over random runs of one class's
// records (versions out of order and repeated with other figures, the
// instructor and location changing, records that do not decode), every
// person's view ends exactly as when every record is delivered.
func TestConflatedViewsEndAsWithout(t *testing.T) {
	staff := func(_, loc string) []string { return []string{"desk_" + loc} }
	rng := rand.New(rand.NewPCG(7, 14))
	dropped := 0
	for run := range 300 {
		var msgs []*queue.Message
		for i := range 1 + rng.IntN(12) {
			var b []byte
			if rng.IntN(15) == 0 {
				b = []byte(`{"class_id":`)
			} else {
				b, _ = json.Marshal(live.Attendance{Type: "attendance", ClassID: "cls_1",
					Location: []string{"a", "b"}[rng.IntN(4)/3], InstructorID: []string{"ins_1", "ins_2"}[rng.IntN(5)/4],
					Confirmed: i, Version: int64(1 + rng.IntN(6))})
			}
			msgs = append(msgs, &queue.Message{Topic: topics.Live, Key: []byte("cls_1"), Value: b})
		}
		// What the consumer keeps, as kafkarun's conflate decides it.
		var kept []*queue.Message
		for i := len(msgs) - 1; i >= 0; i-- {
			if len(kept) > 0 {
				s, v, ok := live.Version(msgs[i])
				ls, lv, lok := live.Version(kept[0])
				if ok && lok && s == ls && v < lv {
					dropped++
					continue
				}
			}
			kept = append([]*queue.Message{msgs[i]}, kept...)
		}
		views := func(ms []*queue.Message) map[string]string {
			fd := feed.NewMemory(feed.Limits{})
			f := &live.Fanout{Feed: fd, Staff: staff}
			for _, m := range ms {
				if err := f.Handle(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
			out := map[string]string{}
			for _, p := range []string{"ins_1", "ins_2", "desk_a", "desk_b"} {
				v, _ := fd.Live(context.Background(), p)
				out[p] = string(v["cls_1"])
			}
			return out
		}
		all, some := views(msgs), views(kept)
		for p := range all {
			if all[p] != some[p] {
				t.Fatalf("run %d: %s ends at %s with every record, at %s with %d of %d", run, p, all[p], some[p], len(kept), len(msgs))
			}
		}
	}
	if dropped == 0 {
		t.Fatal("no record was ever passed over")
	}
}

func TestVersion(t *testing.T) {
	rec := func(cls, ins, loc string, v int64) *queue.Message {
		b, _ := json.Marshal(live.Attendance{Type: "attendance", ClassID: cls, Location: loc, InstructorID: ins, Version: v})
		return &queue.Message{Value: b}
	}
	base, v, ok := live.Version(rec("cls_1", "ins_1", "a", 3))
	if !ok || v != 3 {
		t.Fatalf("Version = %q, %d, %v", base, v, ok)
	}
	for _, tc := range []struct {
		name string
		m    *queue.Message
		same bool
	}{
		{"a later version", rec("cls_1", "ins_1", "a", 9), true},
		{"another instructor", rec("cls_1", "ins_2", "a", 3), false},
		{"another location", rec("cls_1", "ins_1", "b", 3), false},
		{"another class", rec("cls_2", "ins_1", "a", 3), false},
		// The parts cannot run into each other.
		{"parts shifted", rec("cls_1", "ins_1", "", 3), false},
		{"parts shifted", rec("cls_1", "", "ins_1a", 3), false},
		{"parts shifted", rec("cls_1:5", "ins_1", "a", 3), false},
	} {
		s, _, ok := live.Version(tc.m)
		if !ok || (s == base) != tc.same {
			t.Errorf("%s: scope %q against %q, ok %v", tc.name, s, base, ok)
		}
	}
	for _, b := range []string{`{`, `{"class_id":"","version":3}`, `{"class_id":"cls_1","version":"3"}`} {
		if _, _, ok := live.Version(&queue.Message{Value: []byte(b)}); ok {
			t.Errorf("Version(%s) read it", b)
		}
	}
}

// FuzzVersion: whatever a record holds, Version does not fail, it reads
// exactly the records the fan-out's decode reads, and it reads them as
// that decode does: the same version, and the same scope as the record
// that decode gives, written again by json.Marshal (which Version reads by
// its scan of the Aggregator's layout when it holds no escape).
func FuzzVersion(f *testing.F) {
	for _, a := range []live.Attendance{
		{Type: "attendance", ClassID: "cls_1", ClassName: "Spin 45", Location: "Studio 2, Shoreditch", StartsAt: time.Date(2026, 12, 8, 7, 0, 0, 0, time.UTC),
			InstructorID: "ins_1", Confirmed: 3, Capacity: 30, Busy: true, Version: 3},
		{Type: "attendance", ClassID: "cls_2", ClassName: "Yoga <flow> & \"more\"", Location: "Ü", Confirmed: 0, Capacity: 0, Closed: true, Version: 1 << 62},
	} {
		b, _ := json.Marshal(a)
		f.Add(b)
	}
	f.Add([]byte(`{"class_id":"c","version":1e3}`))
	f.Add([]byte(`{"class_id":"c","class_id":"d","version":-1}`))
	f.Add([]byte(`{"type":"attendance","class_id":"c","class_name":"","location":"","starts_at":"2026-12-08T07:00:00+01:00","confirmed":-0,"capacity":01,"busy":false,"closed":false,"version":2}`))
	f.Fuzz(versionAgrees)
}

// TestVersionAgreesOnOddRecords: records at the edges of the Aggregator's
// layout, each read as the fan-out's decode reads it.
func TestVersionAgreesOnOddRecords(t *testing.T) {
	const tmpl = `{"type":"attendance","class_id":%s,"class_name":"Spin","location":%s,"starts_at":%s,"instructor_id":"ins_1","confirmed":%s,"capacity":30,"busy":false,"closed":false,"version":%s}`
	ok := []string{`"cls_1"`, `"Studio 2"`, `"2026-12-08T07:00:00Z"`, `3`, `7`}
	odd := [][]string{
		{"\"cls_\xff\""}, {`"cls_1"`, "\"Studio \xe2\x82\""}, {`"cls\u00e9"`}, {`"cls_1"`, `"Studio \"2\""`},
		{`"cls_1"`, "\"Studio\t2\""}, {`""`}, {`1`},
		{`"cls_1"`, `"a"`, `"2026-12-08T07:00:00"`}, {`"cls_1"`, `"a"`, `"2026-12-08T24:00:00Z"`}, {`"cls_1"`, `"a"`, `0`},
		{`"cls_1"`, `"a"`, `"2026-12-08T07:00:00Z"`, `03`}, {`"cls_1"`, `"a"`, `"2026-12-08T07:00:00Z"`, `-0`}, {`"cls_1"`, `"a"`, `"2026-12-08T07:00:00Z"`, `3.0`},
		{`"cls_1"`, `"a"`, `"2026-12-08T07:00:00Z"`, `3`, `9223372036854775808`}, {`"cls_1"`, `"a"`, `"2026-12-08T07:00:00Z"`, `3`, `-9223372036854775808`},
		{`"cls_1"`, `"a"`, `"2026-12-08T07:00:00Z"`, `3`, `7e0`}, {`"cls_1"`, `"a"`, `"2026-12-08T07:00:00Z"`, `3`, `7 `},
	}
	for _, o := range odd {
		args := make([]any, len(ok))
		for i := range ok {
			args[i] = ok[i]
			if i < len(o) {
				args[i] = o[i]
			}
		}
		b := []byte(fmt.Sprintf(tmpl, args...))
		t.Run(string(b[22:60]), func(t *testing.T) { versionAgrees(t, b) })
	}
	for _, b := range []string{
		fmt.Sprintf(tmpl, ok[0], ok[1], ok[2], ok[3], ok[4]) + " ",
		fmt.Sprintf(tmpl, ok[0], ok[1], ok[2], ok[3], ok[4]) + "x",
		strings.Replace(fmt.Sprintf(tmpl, ok[0], ok[1], ok[2], ok[3], ok[4]), `"version":7}`, `"version":7,"version":8}`, 1),
		strings.Replace(fmt.Sprintf(tmpl, ok[0], ok[1], ok[2], ok[3], ok[4]), `"class_id"`, `"Class_id"`, 1),
		strings.Replace(fmt.Sprintf(tmpl, ok[0], ok[1], ok[2], ok[3], ok[4]), `"instructor_id":"ins_1"`, `"instructor_id":""`, 1),
	} {
		t.Run(b[len(b)-20:], func(t *testing.T) { versionAgrees(t, []byte(b)) })
	}
}

func versionAgrees(t *testing.T, b []byte) {
	scope, v, ok := live.Version(&queue.Message{Value: b})
	var a live.Attendance
	err := json.Unmarshal(b, &a)
	if ok != (err == nil && a.ClassID != "") {
		t.Fatalf("Version ok %v; the fan-out's decode: %v, class %q", ok, err, a.ClassID)
	}
	if !ok {
		return
	}
	again, err := json.Marshal(a)
	if err != nil {
		return // a time json.Marshal refuses (a year past 9999)
	}
	scope2, v2, ok2 := live.Version(&queue.Message{Value: again})
	if v != a.Version || !ok2 || v2 != v || scope2 != scope {
		t.Fatalf("Version = %q, %d; of the decoded record written again %q, %d, %v; the fan-out reads version %d", scope, v, scope2, v2, ok2, a.Version)
	}
}

// TestVersionScansTheAggregatorsRecords: the records the Aggregator
// publishes take Version's scan, not encoding/json (which a flood of them
// made the largest cost of conflation), with and without an instructor.
func TestVersionScansTheAggregatorsRecords(t *testing.T) {
	pub := &capture{}
	a := aggregator(attendance.NewMemory(), pub)
	for i, cls := range []string{"cls_1", "cls_2"} {
		m := event("gym.booking.confirmed", fmt.Sprintf("e%d", i), cls, fmt.Sprintf("b%d", i))
		if i == 1 {
			m.Value = []byte(strings.Replace(string(m.Value), `"instructor"`, `"former_instructor"`, 1))
		}
		if err := a.Handle(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	recs := pub.on(topics.Live)
	if len(recs) != 2 {
		t.Fatalf("%d live records", len(recs))
	}
	withInstructor := 0
	for _, r := range recs {
		var u live.Attendance
		if err := json.Unmarshal(r.Value, &u); err != nil {
			t.Fatal(err)
		}
		if u.InstructorID != "" {
			withInstructor++
		}
		if _, _, _, _, ok := live.Written(r.Value); !ok {
			t.Errorf("the scan does not read the Aggregator's record %s", r.Value)
		}
	}
	if withInstructor != 1 {
		t.Errorf("%d of the records name an instructor; the test wants one of each", withInstructor)
	}
}

// TestVersionReadsNoRecordTooLargeForAView: a record no view can hold
// (feed.MaxItemBytes) stands for nothing, or the figure before it would
// be passed over and neither would reach the views (an outside review:
// an instructor id of 16 KB, which the Aggregator does not clip).
func TestVersionReadsNoRecordTooLargeForAView(t *testing.T) {
	rec := func(ins string, v int64) *queue.Message {
		b, _ := json.Marshal(live.Attendance{Type: "attendance", ClassID: "cls_1", Location: "a", InstructorID: ins, Version: v})
		return &queue.Message{Topic: topics.Live, Key: []byte("cls_1"), Value: b}
	}
	if _, _, ok := live.Version(rec("ins_1", 1)); !ok {
		t.Fatal("a record of a few bytes is not read")
	}
	big := rec(strings.Repeat("i", feed.MaxItemBytes), 2)
	if _, _, ok := live.Version(big); ok {
		t.Errorf("a record of %d bytes is read; a view holds at most %d", len(big.Value), feed.MaxItemBytes)
	}
}

// TestFanoutPassesOverWhatItCannotDeliver: records on herald.live.v1 that
// herald did not write as attendance (malformed JSON, fields of the wrong
// type, no class, a class under another class's key) change no view, are
// never read for conflation, and are each said in a warning with where
// they are and why (an outside tester's kcat records vanished without a
// trace, and one under another class's key pinned that class at a forged
// version).
func TestFanoutPassesOverWhatItCannotDeliver(t *testing.T) {
	log, logs := logtest.Observed()
	fd := feed.NewMemory(feed.Limits{})
	f := &live.Fanout{Feed: fd, Staff: func(string, string) []string { return []string{"desk_1"} }, Logger: log}
	ctx := context.Background()
	good, _ := json.Marshal(live.Attendance{Type: "attendance", ClassID: "cls_0", Location: "a", InstructorID: "ins_0", Confirmed: 3, Version: 2})
	if err := f.Handle(ctx, &queue.Message{Topic: topics.Live, Key: []byte("cls_0"), Value: good}); err != nil {
		t.Fatal(err)
	}
	forged, _ := json.Marshal(live.Attendance{Type: "attendance", ClassID: "cls_1", Location: "a", InstructorID: "ins_0", Confirmed: 777, Version: 50})
	for i, b := range []string{`{not json`, `{"class_id":"cls_0","confirmed":"many","version":"9"}`, `{"version":9}`, string(forged)} {
		m := &queue.Message{Topic: topics.Live, Partition: 1, Offset: int64(10 + i), Key: []byte("cls_0"), Value: []byte(b)}
		if err := f.Handle(ctx, m); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := live.Version(m); ok {
			t.Errorf("Version reads %s, which Handle passes over", b)
		}
	}
	for _, p := range []string{"desk_1", "ins_0"} {
		v, _ := fd.Live(ctx, p)
		if len(v) != 1 || string(v["cls_0"]) != string(good) {
			t.Errorf("%s sees %q", p, v)
		}
	}
	lines := logs.FilterMessage("attendance record passed over").All()
	if len(lines) != 3 { // sampled: 3 a second
		t.Fatalf("%d lines for four records passed over in a second", len(lines))
	}
	for i, want := range []string{"invalid character", "cannot unmarshal", "no class_id"} {
		c := lines[i].ContextMap()
		if !strings.Contains(fmt.Sprint(c["why"]), want) || c["offset"] != int64(10+i) || c["partition"] != int64(1) || c["key"] != "cls_0" {
			t.Errorf("line %d: %v, want why with %q", i, c, want)
		}
	}
	// The forged record, past the sample, on a fresh fan-out.
	log2, logs2 := logtest.Observed()
	f2 := &live.Fanout{Feed: fd, Staff: f.Staff, Logger: log2}
	if err := f2.Handle(ctx, &queue.Message{Topic: topics.Live, Key: []byte("cls_0"), Value: forged}); err != nil {
		t.Fatal(err)
	}
	if l := logs2.FilterMessage("attendance record passed over").All(); len(l) != 1 || !strings.Contains(fmt.Sprint(l[0].ContextMap()["why"]), `"cls_1" under the key of another class`) {
		t.Errorf("the forged record was said as %v", l)
	}
}
