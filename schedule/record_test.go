package schedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
)

func sampleNotification() *notification.Notification {
	n := &notification.Notification{EventID: "evt_1", EventType: "gym.booking.confirmed", Template: "gym.booking.confirmed/reminder",
		Channel: notification.Push, Locale: "en", RecipientID: "mem_1", To: "tok_1", Data: notification.DataOf(map[string]string{"class_name": "Spin <45>"}),
		Priority: notification.Normal, CreatedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Category: "reminders",
		CancelKeys: []string{"gym.booking.confirmed/reminder|booking_id=b1"}}
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	return n
}

func TestRecordRoundTrip(t *testing.T) {
	n := sampleNotification()
	r, err := Schedule(n, n.CreatedAt.Add(2*time.Hour), "herald.push.v1", n.CreatedAt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if NotificationID(got.ID) != n.ID || !got.Due.Equal(r.Due) || got.Topic != "herald.push.v1" || got.Key != "mem_1" || len(got.Keys) != 1 {
		t.Fatalf("round trip: %+v", got)
	}
	back, err := notification.Decode(got.Notification)
	if err != nil || back.Data.Get("class_name") != "Spin <45>" {
		t.Fatalf("notification inside: %v %+v", err, back)
	}
	b2, _ := Encode(got)
	if !bytes.Equal(b, b2) {
		t.Fatalf("re-encoding differs:\n%s\n%s", b, b2)
	}
}

func TestDecodeRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"empty":          ``,
		"not json":       `nope`,
		"version":        `{"v":2,"kind":"done","id":"x"}`,
		"kind":           `{"v":1,"kind":"later","id":"x"}`,
		"unknown field":  `{"v":1,"kind":"done","id":"x","extra":1}`,
		"done without":   `{"v":1,"kind":"done"}`,
		"cancel no keys": `{"v":1,"kind":"cancel","event_id":"e"}`,
		"schedule half":  `{"v":1,"kind":"schedule","id":"x","topic":"herald.push.v1"}`,
		"foreign topic":  `{"v":1,"kind":"schedule","id":"x","due":"2026-12-01T10:00:00Z","topic":"gym.bookings.v1","notification":{}}`,
		"trailing":       `{"v":1,"kind":"done","id":"x"} {}`,
		"trailing brace": `{"v":1,"kind":"done","id":"x"}}garbage`,
		"trailing ]":     `{"v":1,"kind":"done","id":"x"} ]`,
		"newline key":    `{"v":1,"kind":"cancel","keys":["a\nb"]}`,
	} {
		if _, err := Decode([]byte(in)); failure.ClassOf(err) != failure.Poison {
			t.Errorf("%s: %v, want poison", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	n := sampleNotification()
	r, _ := Schedule(n, n.CreatedAt.Add(time.Hour), "herald.push.v1", n.CreatedAt)
	b, _ := Encode(r)
	f.Add(b)
	f.Add([]byte(`{"v":1,"kind":"cancel","keys":["k"],"event_id":"e"}`))
	f.Add([]byte(`{"v":1,"kind":"done","id":"ntf_1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			if failure.ClassOf(err) != failure.Poison {
				t.Fatalf("error not poison: %v", err)
			}
			return
		}
		out, err := Encode(r)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		again, err := Decode(out)
		if err != nil || again.Kind != r.Kind || again.ID != r.ID || !again.Due.Equal(r.Due) {
			t.Fatalf("re-decode: %v %+v vs %+v", err, again, r)
		}
	})
}

// FuzzRead holds the record reader to encoding/json: whatever it reads,
// encoding/json reads alike; what it refuses, encoding/json decides.
func FuzzRead(f *testing.F) {
	n := sampleNotification()
	r, _ := Schedule(n, n.CreatedAt.Add(time.Hour), "herald.push.v1", n.CreatedAt)
	b, _ := Encode(r)
	f.Add(b)
	f.Add([]byte(`{"v":1,"kind":"cancel","due":"2026-12-01T10:00:00+01:00","keys":["k","k\u00e9"],"event_id":"e"}`))
	f.Add([]byte(`{"v":1,"kind":"done","id":"ntf_1","at":"2026-12-01T10:00:00.5Z"}`))
	f.Add([]byte(`{"v":1,"kind":"schedule","id":"x","notification":{ "a" : [1, {"b":null}] },"keys":[]}`))
	f.Add([]byte(`{"v":1,"kind":"schedule","keys":[],"notification":{"a":"\ud800"}}`))
	f.Add([]byte(`{"v":2,"kind":"schedule","notification":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return // Decode refuses it before reading
		}
		r, ok := read(b)
		if !ok {
			return
		}
		u, err := unmarshal(b)
		if err != nil {
			t.Fatalf("read %q; encoding/json: %v", b, err)
		}
		if !reflect.DeepEqual(r, u) {
			t.Fatalf("read %q as\n%+v\nencoding/json as\n%+v", b, r, u)
		}
	})
}

// reflectEncode is Encode as it was, by encoding/json with HTML escaping
// off: what the hand-written encoder must write byte for byte.
func reflectEncode(r *Record) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// FuzzEncodeAsEncodingJSON: Encode writes what encoding/json writes, for
// records of every kind with any strings, keys, times and embedded bytes
// (invalid JSON, JSON with spaces, which encoding/json refused and
// compacted), and for the records Schedule builds, whose notification
// Encode no longer compacts.
func FuzzEncodeAsEncodingJSON(f *testing.F) {
	f.Add(uint8(0), "ntf_1@1.0", "herald.push.v1", "k<1>", "a;b", []byte(` { "id" : "x" } `), "evt\u2028", int64(1764000000123456789), int64(0))
	f.Add(uint8(1), "", "", "", "k", []byte(`{"id":`), "", int64(0), int64(-1))
	f.Add(uint8(2), "x\xff", "t", "\x00", "", []byte(nil), "e", int64(253402300800000000), int64(1))
	f.Fuzz(func(t *testing.T, kind uint8, id, topic, key, keys string, raw []byte, event string, due, at int64) {
		tm := func(ns int64) time.Time {
			if ns == 0 {
				return time.Time{}
			}
			return time.Unix(0, ns).UTC()
		}
		r := &Record{Kind: []string{KindSchedule, KindCancel, KindDone, "other"}[kind%4], ID: id, Due: tm(due), Topic: topic,
			Key: key, Notification: raw, EventID: event, At: tm(at)}
		if keys != "" {
			r.Keys = strings.Split(keys, ";")
		}
		check := func(r *Record) {
			t.Helper()
			r.V = Version
			var want []byte
			var werr error
			if werr = r.validate(); werr == nil {
				want, werr = reflectEncode(r)
				if werr == nil && len(want) > MaxRecordSize {
					werr = errors.New("too large")
				}
			}
			got, gerr := Encode(r)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("errors differ: encoding/json %v, Encode %v", werr, gerr)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Encode differs from encoding/json:\n got %s\nwant %s", got, want)
			}
			if gerr == nil {
				// What herald writes, it reads back without reflection
				// (but a notification that is not an object).
				rr, ok := read(got)
				if !ok && (len(r.Notification) == 0 || bytes.HasPrefix(bytes.TrimSpace(r.Notification), []byte("{"))) {
					t.Fatalf("read refused what Encode wrote: %s", got)
				}
				if u, err := unmarshal(got); ok && (err != nil || !reflect.DeepEqual(rr, u)) {
					t.Fatalf("read %s as\n%+v\nencoding/json as\n%+v (%v)", got, rr, u, err)
				}
			}
		}
		check(r)
		n := sampleNotification()
		n.To, n.Data, n.CancelKeys = key, n.Data.With(notification.Field{Key: "class_name", Value: event}), r.Keys
		if s, err := Schedule(n, tm(due), topic, tm(at)); err == nil {
			check(s)
		}
	})
}

// BenchmarkDecode is a schedule record as the scheduler consumes it:
// Decode (by hand, since issue 14's twenty-first pass) against the same
// bytes through encoding/json's Decoder, as Decode read them before.
func BenchmarkDecode(b *testing.B) {
	n := sampleNotification()
	r, err := Schedule(n, n.CreatedAt.Add(2*time.Hour), "herald.push.v1", n.CreatedAt)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := Encode(r)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		dec  func([]byte) (*Record, error)
	}{{"encoding-json", unmarshal}, {"by-hand", Decode}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := c.dec(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncode is a dispatcher's schedule record (Schedule, then
// Encode) by hand against encoding/json.
func BenchmarkEncode(b *testing.B) {
	n := sampleNotification()
	for _, c := range []struct {
		name string
		enc  func(*Record) ([]byte, error)
	}{{"encoding-json", reflectEncode}, {"by-hand", Encode}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, err := Schedule(n, n.CreatedAt.Add(2*time.Hour), "herald.push.v1", n.CreatedAt)
				if err == nil {
					_, err = c.enc(r)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestEncodeAllocatesOnce: a schedule record with cancel keys and a
// nanosecond due time in a zone is written into one buffer. Before, its
// prefix outgrew the 256 bytes Encode allowed over the notification, and
// appending the notification copied the record again.
func TestEncodeAllocatesOnce(t *testing.T) {
	n := sampleNotification()
	n.CancelKeys = []string{"gym.booking.confirmed/reminder|booking_id=b1", "gym.class.cancelled/reminder|class_id=cls_spin_0700_2026-12-01"}
	due := time.Date(2026, 12, 1, 12, 0, 0, 123456789, time.FixedZone("", 3600))
	r, err := Schedule(n, due, "herald.push.v1", n.CreatedAt.Add(time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	if allocs := testing.AllocsPerRun(100, func() {
		if out, err = Encode(r); err != nil {
			t.Fatal(err)
		}
	}); allocs != 1 {
		t.Errorf("Encode: %v allocations, want 1", allocs)
	}
	if cap(out) > 2*len(out) {
		t.Errorf("Encode: %d bytes in a buffer of %d", len(out), cap(out))
	}
}

// TestEntryID: an entry id is the notification id, @, the due time in Unix
// milliseconds and ., the attempt, as fmt.Sprintf("%s@%d.%d") wrote it
// (ids already on the schedule topic keep their meaning), and
// NotificationID takes the id back.
func TestEntryID(t *testing.T) {
	for _, tc := range []struct {
		id      string
		due     time.Time
		attempt int
	}{
		{"n1", time.UnixMilli(1733000000123), 0},
		{"evt-9/email/mem_1", time.UnixMilli(1), 7},
		{"x", time.UnixMilli(-5), 123456},                         // before 1970
		{"", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), 1}, // the JSON form's last year
	} {
		got := EntryID(tc.id, tc.due, tc.attempt)
		if want := fmt.Sprintf("%s@%d.%d", tc.id, tc.due.UnixMilli(), tc.attempt); got != want {
			t.Errorf("EntryID(%q, %v, %d) = %q, want %q", tc.id, tc.due, tc.attempt, got, want)
		}
		if back := NotificationID(got); back != tc.id {
			t.Errorf("NotificationID(%q) = %q, want %q", got, back, tc.id)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = EntryID("evt-9/email/mem_1", time.UnixMilli(1733000000123), 2) }); n != 1 {
		t.Errorf("EntryID allocates %v times, want 1", n)
	}
}

// A record's event time: a cancel record's due, a schedule record's
// notification's event_time; zero when there is none. Covers allows
// CancelSkew and covers what cannot be ordered.
func TestEventTime(t *testing.T) {
	n := sampleNotification()
	now := n.CreatedAt
	r, _ := Schedule(n, now.Add(time.Hour), "herald.push.v1", now)
	if got := r.EventTime(); !got.IsZero() {
		t.Fatalf("no event_time in the data: %v", got)
	}
	n.Data = n.Data.With(notification.Field{Key: "event_time", Value: "2026-12-01T09:59:00Z"})
	r, _ = Schedule(n, now.Add(time.Hour), "herald.push.v1", now)
	b, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	if r, err = Decode(b); err != nil {
		t.Fatal(err)
	}
	if got, want := r.EventTime(), time.Date(2026, 12, 1, 9, 59, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("schedule record's event time %v, want %v", got, want)
	}
	c := CancelRecord("evt_c", now, []string{"k"}, now.Add(time.Second))
	if b, err = Encode(c); err != nil {
		t.Fatal(err)
	}
	if c, err = Decode(b); err != nil || !c.EventTime().Equal(now) {
		t.Fatalf("cancel record's event time %v (%v), want %v", c.EventTime(), err, now)
	}
	for _, tc := range []struct {
		cancelled, scheduled time.Time
		want                 bool
	}{
		{now, now.Add(-time.Hour), true},
		{now, now, true},
		{now, now.Add(CancelSkew), true},
		{now, now.Add(CancelSkew + time.Second), false},
		{time.Time{}, now.Add(time.Hour), true},
		{now, time.Time{}, true},
	} {
		if got := Covers(tc.cancelled, tc.scheduled); got != tc.want {
			t.Errorf("Covers(%v, %v) = %v, want %v", tc.cancelled, tc.scheduled, got, tc.want)
		}
	}
}

// eventTimeByJSON is eventTimeOf the slow, sure way.
func eventTimeByJSON(b []byte) time.Time {
	var n struct {
		Data map[string]string `json:"data"`
	}
	if json.Unmarshal(b, &n) != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, n.Data["event_time"])
	if err != nil {
		return time.Time{}
	}
	return t
}

// checkEventTimeOf compares eventTimeOf with encoding/json on the JSON
// form of a notification with data plus k: v.
func checkEventTimeOf(t *testing.T, data map[string]string, k, v string) {
	t.Helper()
	n := sampleNotification()
	m := map[string]string{}
	for dk, dv := range data {
		m[dk] = dv
	}
	m[k] = v
	n.Data = notification.DataOf(m)
	b, err := notification.EncodeJSON(n)
	if err != nil {
		return
	}
	if got, want := eventTimeOf(b), eventTimeByJSON(b); !got.Equal(want) {
		t.Fatalf("data %q: eventTimeOf %v, encoding/json %v\n%s", n.Data, got, want, b)
	}
}

// The scan for data.event_time agrees with encoding/json whatever else
// the data holds: keys and values that quote the key, keys that contain
// it, values that look like it.
func TestEventTimeOfAgreesWithJSON(t *testing.T) {
	real := map[string]string{"event_time": "2026-12-01T09:59:00Z"}
	for _, kv := range [][2]string{
		{`x"event_time`, "2020-01-01T00:00:00Z"},
		{`x","event_time`, "2020-01-01T00:00:00Z"},
		{"a", `,"event_time":"2020-01-01T00:00:00Z"`},
		{"a", `{"event_time":"2020-01-01T00:00:00Z"}`},
		{`{"event_time":"2020-01-01T00:00:00Z"}`, "b"},
		{"aevent_time", "2020-01-01T00:00:00Z"},
		{"event_time_x", "2020-01-01T00:00:00Z"},
		{"event_timex", "2020-01-01T00:00:00Z"},
		{"\\", `\`},
		{"a\\", `\"event_time\":\"2020-01-01T00:00:00Z`},
	} {
		checkEventTimeOf(t, real, kv[0], kv[1])
		checkEventTimeOf(t, nil, kv[0], kv[1])
	}
	checkEventTimeOf(t, nil, "event_time", "not a time")
	checkEventTimeOf(t, nil, "event_time", "2026-12-01T09:59:00.123+01:00")
}

func FuzzEventTimeOf(f *testing.F) {
	f.Add(`x"event_time`, "2020-01-01T00:00:00Z", true)
	f.Add("a", `,"event_time":"2020-01-01T00:00:00Z"`, false)
	f.Add("event_time", "2026-12-01T09:59:00Z", false)
	f.Fuzz(func(t *testing.T, k, v string, withReal bool) {
		var data map[string]string
		if withReal {
			data = map[string]string{"event_time": "2026-12-01T09:59:00Z"}
		}
		checkEventTimeOf(t, data, k, v)
	})
}

// A replace record withdraws what events at least a second earlier
// scheduled, never what its own event schedules (whose time the
// notification carries in whole seconds), and is a cancel record that a
// scheduler of the release before reads alike.
func TestReplaceRecord(t *testing.T) {
	evTime := time.Date(2026, 11, 21, 10, 0, 0, 700_000_000, time.UTC) // a producer's sub-second time
	now := evTime.Add(time.Second)
	r := ReplaceRecord("evt_move", evTime, []string{"k"}, now)
	if r.Kind != KindCancel || r.EventID != "evt_move" || !slices.Equal(r.Keys, []string{"k"}) {
		t.Fatalf("record %+v", r)
	}
	own := evTime.Truncate(time.Second) // as the notification's event_time has it
	for _, tc := range []struct {
		scheduled time.Time
		want      bool
	}{
		{own, false},
		{own.Add(time.Second), false},
		{own.Add(-time.Second), true},
		{own.Add(-time.Hour), true},
		{time.Time{}, true}, // an event without a time cannot be ordered
	} {
		if got := Covers(r.EventTime(), tc.scheduled); got != tc.want {
			t.Errorf("an event at %s replaced by one at %s: %v, want %v", tc.scheduled, evTime, got, tc.want)
		}
	}
	b, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil || !back.EventTime().Equal(r.EventTime()) {
		t.Fatalf("decoded %+v, %v", back, err)
	}
	if ReplaceRecord("evt_untimed", time.Time{}, []string{"k"}, now) != nil {
		t.Fatal("an event without a time replaces")
	}
	for _, epoch := range []time.Time{time.Unix(0, 0), time.Unix(0, 900_000_000), time.Unix(-3600, 0)} {
		if ReplaceRecord("evt_epoch", epoch, []string{"k"}, now) != nil {
			t.Errorf("an event at %s replaces: its reach is before the epoch", epoch.UTC())
		}
	}
	if r := ReplaceRecord("evt_1s", time.Unix(1, 0), []string{"k"}, now); r == nil || !Covers(r.EventTime(), time.Unix(0, 0)) || Covers(r.EventTime(), time.Unix(1, 0)) {
		t.Errorf("an event at the epoch's second second replaces %+v", r)
	}
}

// FuzzScheduleMessageAsScheduleThenMessage: ScheduleMessage, which writes
// the notification's JSON straight into the record's, is Schedule then
// Message byte for byte, and fails where they fail with the same class and
// reason: a notification over its limit, a topic not herald's, a due time
// JSON cannot hold, cancel keys no record takes.
func FuzzScheduleMessageAsScheduleThenMessage(f *testing.F) {
	f.Add("tok_1", "Spin <45>", "gym.booking.confirmed/reminder|booking_id=b1", "herald.push.v1", int64(1764000000123456789), int64(1764000000000000000), 0, 0)
	f.Add("t", "x", "", "herald.email.v1", int64(1), int64(0), 3, 0)
	f.Add("t", "x", "k", "other.topic", int64(1764000000000000000), int64(1), 0, 0)
	f.Add("t", "x", "k", "herald.push.v1", int64(253402300800000000), int64(1), 0, 0) // the year 10000
	f.Add("t", "x", "k\nk", "herald.push.v1", int64(1764000000000000000), int64(1), 0, 0)
	f.Add("t", "x", "k", "herald.push.v1", int64(1764000000000000000), int64(1), 0, notification.MaxEncodedSize)
	f.Add("t", "x", "k", "herald.push.v1", int64(1764000000000000000), int64(1), 1, notification.MaxEncodedSize-300)
	f.Fuzz(func(t *testing.T, to, class, keys, topic string, due, at int64, attempt, pad int) {
		n := sampleNotification()
		n.To, n.Data, n.Attempt = to, n.Data.With(notification.Field{Key: "class_name", Value: class}), attempt%4
		if pad > 0 && pad <= 2*notification.MaxEncodedSize {
			n.Data = n.Data.With(notification.Field{Key: "pad", Value: strings.Repeat("p", pad)})
		}
		n.CancelKeys = nil
		if keys != "" {
			n.CancelKeys = strings.Split(keys, ";")
		}
		dueAt, atAt := time.Unix(0, due), time.Unix(0, at)
		var want queue.Message
		r, werr := Schedule(n, dueAt, topic, atAt)
		if werr == nil {
			want, werr = Message(r)
		}
		got, gerr := ScheduleMessage(n, dueAt, topic, atAt)
		if (werr == nil) != (gerr == nil) || werr != nil && (failure.ClassOf(werr) != failure.ClassOf(gerr) || failure.ReasonOf(werr) != failure.ReasonOf(gerr) || werr.Error() != gerr.Error()) {
			t.Fatalf("errors differ: Schedule then Message %v, ScheduleMessage %v", werr, gerr)
		}
		if gerr != nil {
			return
		}
		if got.Topic != want.Topic || !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Value, want.Value) || !got.Time.Equal(want.Time) {
			t.Fatalf("messages differ:\n got %s %s %s %v\nwant %s %s %s %v", got.Topic, got.Key, got.Value, got.Time, want.Topic, want.Key, want.Value, want.Time)
		}
	})
}

// TestScheduleMessageWritesOneRecordBuffer: the record and the notification
// in it are one buffer; Schedule then Message wrote the notification's JSON
// into a buffer of its own and copied it.
func TestScheduleMessageWritesOneRecordBuffer(t *testing.T) {
	n := sampleNotification()
	due := n.CreatedAt.Add(2 * time.Hour)
	long := testing.AllocsPerRun(100, func() {
		r, err := Schedule(n, due, "herald.push.v1", n.CreatedAt)
		if err == nil {
			_, err = Message(r)
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	var m queue.Message
	short := testing.AllocsPerRun(100, func() {
		var err error
		if m, err = ScheduleMessage(n, due, "herald.push.v1", n.CreatedAt); err != nil {
			t.Fatal(err)
		}
	})
	if short > long-2 {
		t.Errorf("ScheduleMessage: %v allocations, Schedule then Message %v; want two fewer (the notification's buffer and the record)", short, long)
	}
	if cap(m.Value) > 2*len(m.Value) {
		t.Errorf("ScheduleMessage: %d bytes in a buffer of %d", len(m.Value), cap(m.Value))
	}
}
