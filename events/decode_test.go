package events_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edited returns the sample with edit applied to its generic form, so each
// rejection case states only what it breaks.
func edited(t testing.TB, name string, edit func(ev map[string]any)) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(readSample(t, name), &ev); err != nil {
		t.Fatal(err)
	}
	edit(ev)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// obj walks dot-separated object keys from ev, for edits.
func obj(ev map[string]any, path string) map[string]any {
	m := ev
	for _, k := range strings.Split(path, ".") {
		m = m[k].(map[string]any)
	}
	return m
}

func TestDecodeSamples(t *testing.T) {
	tests := []struct {
		file       string
		typ        string
		recipients string
		want       []string // recipient ids
	}{
		{"booking_confirmed.json", events.BookingConfirmed, "member", []string{"mem_5521"}},
		{"booking_cancelled.json", events.BookingCancelled, "member", []string{"mem_8830"}},
		{"waitlist_promoted.json", events.WaitlistPromoted, "member", []string{"mem_1207"}},
		{"class_reminder.json", events.ClassReminder, "member", []string{"mem_4410"}},
		{"class_cancelled.json", events.ClassCancelled, "attendees", []string{"mem_5521", "mem_6602", "mem_7719"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ev, err := events.Decode(readSample(t, tt.file))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if ev.Type != tt.typ || ev.SpecVersion != "1.0" || ev.ID == "" || ev.Source == "" || ev.Time.IsZero() {
				t.Errorf("envelope = %+v", ev)
			}
			if !json.Valid(ev.RawData) || ev.Data == nil {
				t.Errorf("RawData/Data not set: %q %v", ev.RawData, ev.Data)
			}
			people, err := ev.People(tt.recipients)
			if err != nil {
				t.Fatalf("People(%q): %v", tt.recipients, err)
			}
			var ids []string
			for _, p := range people {
				ids = append(ids, p.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
				t.Errorf("People(%q) ids = %v, want %v", tt.recipients, ids, tt.want)
			}
			c, err := ev.Class()
			if err != nil {
				t.Fatalf("Class: %v", err)
			}
			if c.ID == "" || c.Instructor == nil || c.Instructor.ID == "" || !c.EndsAt.After(c.StartsAt) {
				t.Errorf("Class = %+v", c)
			}
			if !ev.Has("class.instructor") {
				t.Error(`Has("class.instructor") = false`)
			}
			ins, err := ev.People("class.instructor")
			if err != nil || len(ins) != 1 || ins[0].ID != c.Instructor.ID {
				t.Errorf("People(class.instructor) = %v, %v", ins, err)
			}
		})
	}
}

func TestDecodeConfirmedFields(t *testing.T) {
	ev, err := events.Decode(readSample(t, "booking_confirmed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 23, 7, 15, 0, 0, time.UTC); !ev.Time.Equal(want) {
		t.Errorf("Time = %v, want %v", ev.Time, want)
	}
	if ev.Subject != "class/cls_spin_0700" || ev.DataContentType != "application/json" {
		t.Errorf("Subject, DataContentType = %q, %q", ev.Subject, ev.DataContentType)
	}
	if n, ok := obj(ev.Data, "class")["capacity"].(json.Number); !ok || n != "24" {
		t.Errorf("data.class.capacity = %#v, want json.Number 24", obj(ev.Data, "class")["capacity"])
	}
	c, err := ev.Class()
	if err != nil {
		t.Fatal(err)
	}
	if c.Capacity != 24 || c.Booked != 19 || c.TimeZone != "Europe/London" || c.Location == "" {
		t.Errorf("Class = %+v", c)
	}
	ps, err := ev.People("member")
	if err != nil {
		t.Fatal(err)
	}
	m := ps[0]
	if m.Email != "oliver.bennett@example.com" || m.Phone != "+447700900123" || m.Locale != "en-GB" ||
		m.TimeZone != "Europe/London" || len(m.PushTokens) != 2 || m.Preferences == nil {
		t.Errorf("member = %+v", m)
	}
}

func TestDecodeRejects(t *testing.T) {
	const (
		decode  = failure.ReasonDecode
		invalid = failure.ReasonInvalid
	)
	confirmed := func(edit func(map[string]any)) []byte { return edited(t, "booking_confirmed.json", edit) }
	cancelled := func(edit func(map[string]any)) []byte { return edited(t, "class_cancelled.json", edit) }
	member := func(key string, v any) []byte {
		return confirmed(func(ev map[string]any) { obj(ev, "data.member")[key] = v })
	}
	class := func(key string, v any) []byte {
		return confirmed(func(ev map[string]any) { obj(ev, "data.class")[key] = v })
	}
	valid := readSample(t, "booking_confirmed.json")
	oversize := confirmed(func(ev map[string]any) { ev["padding"] = strings.Repeat("x", events.MaxEventSize) })

	tests := []struct {
		name   string
		in     []byte
		reason failure.Reason
		msg    string
	}{
		{"empty", nil, decode, "not a JSON object"},
		{"not JSON", []byte("booking confirmed for mem_5521"), decode, "not a JSON object"},
		{"broken JSON", valid[:len(valid)/2], decode, "not valid JSON"},
		{"JSON array", []byte(`[{"specversion":"1.0"}]`), decode, "not a JSON object"},
		{"JSON null", []byte(`null`), decode, "not a JSON object"},
		{"bad UTF-8", append([]byte(`{"id":"`), 0xff, '"', '}'), decode, "UTF-8"},
		{"oversize", oversize, decode, "more than the 300000 allowed"},
		{"trailing garbage", append(bytes.Clone(valid), "\n}garbage"...), decode, "after top-level value"},
		{"two objects", append(bytes.Clone(valid), valid...), decode, "after top-level value"},

		{"missing id", confirmed(func(ev map[string]any) { delete(ev, "id") }), invalid, "id is missing"},
		{"empty id", confirmed(func(ev map[string]any) { ev["id"] = "" }), invalid, "id is empty"},
		{"numeric id", confirmed(func(ev map[string]any) { ev["id"] = 42 }), invalid, "id is a number, want a string"},
		// Ids travel into every notification and its push data and feed
		// item, which have small limits of their own.
		{"long id", confirmed(func(ev map[string]any) { ev["id"] = strings.Repeat("e", events.MaxIDBytes+1) }), invalid, "id is 257 bytes, at most 256"},
		{"long member id", member("id", strings.Repeat("m", events.MaxIDBytes+1)), invalid, "data.member.id is 257 bytes, at most 256"},
		{"long class id", class("id", strings.Repeat("c", events.MaxIDBytes+1)), invalid, "data.class.id is 257 bytes, at most 256"},
		{"long booking id", confirmed(func(ev map[string]any) { obj(ev, "data")["booking_id"] = strings.Repeat("b", events.MaxIDBytes+1) }), invalid, "data.booking_id is 257 bytes, at most 256"},
		{"missing source", confirmed(func(ev map[string]any) { delete(ev, "source") }), invalid, "source is missing"},
		{"missing type", confirmed(func(ev map[string]any) { delete(ev, "type") }), invalid, "type is missing"},
		{"missing specversion", confirmed(func(ev map[string]any) { delete(ev, "specversion") }), invalid, "specversion is missing"},
		{"wrong specversion", confirmed(func(ev map[string]any) { ev["specversion"] = "0.3" }), invalid, `specversion "0.3" is not "1.0"`},
		{"bad time", confirmed(func(ev map[string]any) { ev["time"] = "23/11/2026 07:15" }), invalid, `time "23/11/2026 07:15" is not an RFC 3339 time`},
		{"xml content type", confirmed(func(ev map[string]any) { ev["datacontenttype"] = "application/xml" }), invalid, `datacontenttype "application/xml" is not application/json`},
		{"data missing", confirmed(func(ev map[string]any) { delete(ev, "data") }), invalid, "data is missing"},
		{"data null", confirmed(func(ev map[string]any) { ev["data"] = nil }), invalid, "data is null, want an object"},
		{"data not an object", confirmed(func(ev map[string]any) { ev["data"] = []any{1, 2} }), invalid, "data is an array, want an object"},
		{"data string", confirmed(func(ev map[string]any) { ev["data"] = "{}" }), invalid, "data is a string, want an object"},
		{"data_base64", confirmed(func(ev map[string]any) { delete(ev, "data"); ev["data_base64"] = "e30=" }), invalid, "data_base64 is not supported"},

		{"missing booking_id", confirmed(func(ev map[string]any) { delete(obj(ev, "data"), "booking_id") }), invalid, "data.booking_id is missing"},
		{"missing member", confirmed(func(ev map[string]any) { delete(obj(ev, "data"), "member") }), invalid, "data.member is missing"},
		{"member not an object", confirmed(func(ev map[string]any) { obj(ev, "data")["member"] = "mem_5521" }), invalid, "data.member is a string, want an object"},
		{"member without id", member("id", nil), invalid, "data.member.id is missing"},
		{"email number", member("email", 7), invalid, "data.member.email is a number, want a string"},
		{"bad locale", member("locale", "English (UK)"), invalid, `data.member.locale "English (UK)" is not a BCP 47 language tag`},
		{"bad time zone", member("time_zone", "Europe/Londres"), invalid, `data.member.time_zone "Europe/Londres" is not an IANA time zone`},
		{"Local time zone", member("time_zone", "Local"), invalid, "is not an IANA time zone"},
		{"path time zone", member("time_zone", "Europe//London"), invalid, "is not an IANA time zone"},
		{"dot-dot time zone", member("time_zone", "../../etc/passwd"), invalid, "is not an IANA time zone"},
		{"push tokens not a list", member("push_tokens", "tok"), invalid, "data.member.push_tokens is a string, want an array of strings"},
		{"preference not bool", member("preferences", map[string]any{"sms": "false"}), invalid, "data.member.preferences.sms is a string, want a boolean"},
		{"preference null", member("preferences", map[string]any{"email": nil}), invalid, "data.member.preferences.email is null, want a boolean"},
		{"preferences list", member("preferences", []any{"email"}), invalid, "data.member.preferences is an array"},

		{"missing class", confirmed(func(ev map[string]any) { delete(obj(ev, "data"), "class") }), invalid, "data.class is missing"},
		{"class without name", class("name", ""), invalid, "data.class.name is empty"},
		{"class without starts_at", class("starts_at", nil), invalid, "data.class.starts_at is missing"},
		{"class bad starts_at", class("starts_at", "2026-11-25 07:00"), invalid, `data.class.starts_at "2026-11-25 07:00" is not an RFC 3339 time`},
		{"ends_at before starts_at", class("ends_at", "2026-11-25T06:15:00Z"), invalid, `data.class.ends_at "2026-11-25T06:15:00Z" is not after starts_at "2026-11-25T07:00:00Z"`},
		{"ends_at equals starts_at", class("ends_at", "2026-11-25T08:00:00+01:00"), invalid, "is not after starts_at"},
		{"class bad time zone", class("time_zone", "GMT+1 (London)"), invalid, `data.class.time_zone "GMT+1 (London)" is not an IANA time zone`},
		{"class without time zone", class("time_zone", nil), invalid, "data.class.time_zone is missing"},
		{"capacity fraction", class("capacity", 24.5), invalid, `data.class.capacity "24.5" is not a non-negative whole number`},
		{"booked negative", class("booked", -1), invalid, "data.class.booked \"-1\" is not a non-negative whole number"},
		{"capacity string", class("capacity", "24"), invalid, "data.class.capacity is a string, want a number"},

		{"class.cancelled without attendees", cancelled(func(ev map[string]any) { delete(obj(ev, "data"), "attendees") }), invalid, "data.attendees is missing"},
		{"class.cancelled empty attendees", cancelled(func(ev map[string]any) { obj(ev, "data")["attendees"] = []any{} }), invalid, "data.attendees is empty"},
		{"class.cancelled attendees object", cancelled(func(ev map[string]any) { obj(ev, "data")["attendees"] = map[string]any{"id": "m"} }), invalid, "data.attendees is an object, want an array of persons"},
		{"class.cancelled without reason", cancelled(func(ev map[string]any) { delete(obj(ev, "data"), "reason") }), invalid, "data.reason is missing"},
		{"booking.cancelled numeric reason", edited(t, "booking_cancelled.json", func(ev map[string]any) { obj(ev, "data")["reason"] = 3 }), invalid, "data.reason is a number, want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := events.Decode(tt.in)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", ev)
			}
			if ev != nil {
				t.Errorf("Decode returned an event with its error")
			}
			if c := failure.ClassOf(err); c != failure.Poison {
				t.Errorf("class = %v, want poison (%v)", c, err)
			}
			if r := failure.ReasonOf(err); r != tt.reason {
				t.Errorf("reason = %v, want %v (%v)", r, tt.reason, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error is %d bytes long, want a short message: %.300s", len(err.Error()), err)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	confirmed := func(edit func(map[string]any)) []byte { return edited(t, "booking_confirmed.json", edit) }
	member := func(key string, v any) []byte {
		return confirmed(func(ev map[string]any) { obj(ev, "data.member")[key] = v })
	}
	class := func(key string, v any) []byte {
		return confirmed(func(ev map[string]any) { obj(ev, "data.class")[key] = v })
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"unknown extra fields", confirmed(func(ev map[string]any) {
			ev["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			ev["partitionkey"] = "cls_spin_0700"
			obj(ev, "data")["channel"] = "app"
			obj(ev, "data.member")["membership"] = map[string]any{"tier": "gold", "since": 2019}
			obj(ev, "data.class")["room_features"] = []any{"bikes", "sound"}
		})},
		{"no time, subject or content type", confirmed(func(ev map[string]any) {
			delete(ev, "time")
			delete(ev, "subject")
			delete(ev, "datacontenttype")
		})},
		{"content type with charset", confirmed(func(ev map[string]any) { ev["datacontenttype"] = "application/json; charset=utf-8" })},
		// Well-formed BCP 47 that no registry knows: the templates fall
		// back to English; refusing it cost every recipient of the event.
		{"well-formed unregistered locale", member("locale", "zz")},
		{"well-formed unregistered region", member("locale", "zz-ZZ")},
		{"ids at their limit", confirmed(func(ev map[string]any) {
			ev["id"] = strings.Repeat("e", events.MaxIDBytes)
			obj(ev, "data.member")["id"] = strings.Repeat("m", events.MaxIDBytes)
			obj(ev, "data.class")["id"] = strings.Repeat("c", events.MaxIDBytes)
			obj(ev, "data")["booking_id"] = strings.Repeat("b", events.MaxIDBytes)
		})},
		{"optional person fields null or empty", confirmed(func(ev map[string]any) {
			m := obj(ev, "data.member")
			m["email"], m["phone"], m["locale"], m["time_zone"], m["push_tokens"], m["preferences"] = nil, "", "", nil, nil, nil
		})},
		{"instructor null", confirmed(func(ev map[string]any) { obj(ev, "data.class")["instructor"] = nil })},
		{"minimal person", confirmed(func(ev map[string]any) { obj(ev, "data")["member"] = map[string]any{"id": "mem_1"} })},
		{"locale with extension", member("locale", "en-GB-u-ca-gregory")},
		{"preferences for an unknown channel", member("preferences", map[string]any{"whatsapp": false})},
		{"offset times", confirmed(func(ev map[string]any) {
			obj(ev, "data.class")["starts_at"] = "2026-11-25T08:00:00+01:00"
			obj(ev, "data.class")["ends_at"] = "2026-11-25T07:45:00Z"
		})},
		{"leading whitespace", append([]byte("\n\t "), readSample(t, "booking_confirmed.json")...)},

		// Addresses are refused per recipient at planning (package address),
		// never by failing the event and every other recipient with it.
		{"invalid email", member("email", "oliver.bennett@")},
		{"email with display name", member("email", "Oliver <oliver@example.com>")},
		{"invalid phone", member("phone", "+12")},
		{"national phone", member("phone", "07700900123")},
		{"phone with spaces", member("phone", "+44 7700 900123")},
		{"empty push token", member("push_tokens", []any{"ok", ""})},
		{"push token with space", member("push_tokens", []any{"abc def"})},
		{"push token too long", member("push_tokens", []any{strings.Repeat("a", 4097)})},
		{"bad instructor phone", class("instructor", map[string]any{"id": "ins_1", "phone": "12345"})},
		{"class.cancelled attendee with a bad email", edited(t, "class_cancelled.json", func(ev map[string]any) {
			obj(ev, "data")["attendees"].([]any)[2].(map[string]any)["email"] = "hannah at example.com"
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := events.Decode(tt.in); err != nil {
				t.Fatalf("Decode: %v", err)
			}
		})
	}
}

// Types that are not v1 get envelope checks only: their data is routed by
// configuration and must not be held to the v1 shapes.
func TestDecodeUnknownType(t *testing.T) {
	in := []byte(`{"specversion":"1.0","id":"evt_9","source":"locker-service","type":"gym.locker.expiring",
		"data":{"locker":"B-112","member":{"id":"mem_5521","phone":"not checked here"},"expires_in":3600}}`)
	ev, err := events.Decode(in)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if ev.Type != "gym.locker.expiring" || ev.Data["locker"] != "B-112" || ev.Data["expires_in"] != json.Number("3600") {
		t.Errorf("event = %+v", ev)
	}
	// The recipients are still validated when routing asks for them; their
	// addresses are kept as given, for the planner to check per recipient.
	if ps, err := ev.People("member"); err != nil || ps[0].Phone != "not checked here" {
		t.Errorf("People(member) = %+v, %v", ps, err)
	}
	if _, err := ev.People("locker"); err == nil || !strings.Contains(err.Error(), "data.locker is a string") {
		t.Errorf("People(locker) error = %v", err)
	}

	if _, err := events.Decode([]byte(`{"specversion":"1.0","id":"e","source":"s","type":"x.y","data":[]}`)); err == nil {
		t.Error("unknown type with array data decoded; the envelope still requires an object")
	}
}

func TestPeopleAndHas(t *testing.T) {
	ev, err := events.Decode(readSample(t, "class_cancelled.json"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := ev.People("attendees")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[1].Name != "Sofía Navarro" || all[1].Locale != "es-ES" || all[2].Email != "" {
		t.Errorf("attendees = %+v", all)
	}

	tests := []struct {
		path string
		has  bool
		msg  string // People error; "" for success
	}{
		{"attendees", true, ""},
		{"class.instructor", true, ""},
		{"member", false, "data.member is missing"},
		{"class.assistant", false, "data.class.assistant is missing"},
		{"reason", true, `data.reason is a string, want a person or an array of persons`},
		{"reason.id", false, "data.reason is a string, want an object"},
		{"class.instructor.name.first", false, "data.class.instructor.name is a string, want an object"},
		{"", false, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := ev.Has(tt.path); got != tt.has {
				t.Errorf("Has(%q) = %v, want %v", tt.path, got, tt.has)
			}
			_, err := ev.People(tt.path)
			switch {
			case tt.msg == "" && err != nil:
				t.Errorf("People(%q): %v", tt.path, err)
			case tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)):
				t.Errorf("People(%q) error = %v, want it to contain %q", tt.path, err, tt.msg)
			case err != nil && failure.ClassOf(err) != failure.Poison:
				t.Errorf("People(%q) error %v is not poison", tt.path, err)
			}
		})
	}
}

func TestPeopleArrayErrorNamesElement(t *testing.T) {
	ev, err := events.Decode([]byte(`{"specversion":"1.0","id":"e","source":"s","type":"gym.trainer.broadcast",
		"data":{"to":[{"id":"a"},{"id":"b","locale":"en_GB!"}], "null_member": null}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.People("to"); err == nil || !strings.Contains(err.Error(), `data.to[1].locale "en_GB!"`) {
		t.Errorf("People(to) error = %v", err)
	}
	if ev.Has("null_member") {
		t.Error("Has on a null value = true")
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		name  string
		prefs events.Preferences
		want  map[string]bool
	}{
		{"absent preferences", nil, map[string]bool{"email": true, "sms": true, "push": true}},
		{"empty preferences", events.Preferences{}, map[string]bool{"email": true, "sms": true, "push": true}},
		{"sms off", events.Preferences{"sms": false}, map[string]bool{"email": true, "sms": false, "push": true}},
		{"all set", events.Preferences{"email": false, "sms": true, "push": false}, map[string]bool{"email": false, "sms": true, "push": false}},
		{"a channel herald does not have yet", events.Preferences{"pigeon": false}, map[string]bool{"pigeon": false, "email": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := events.Person{ID: "mem_1", Preferences: tt.prefs}
			for ch, want := range tt.want {
				if got := p.Allows(ch); got != want {
					t.Errorf("Allows(%q) = %v, want %v", ch, got, want)
				}
			}
		})
	}

	// The same, through decoding.
	ev, err := events.Decode(readSample(t, "class_reminder.json"))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := ev.People("member")
	if err != nil {
		t.Fatal(err)
	}
	if m := ps[0]; m.Allows("email") || !m.Allows("sms") || !m.Allows("push") {
		t.Errorf("member with email:false, sms:true, push:true: Allows = email %v, sms %v, push %v",
			m.Allows("email"), m.Allows("sms"), m.Allows("push"))
	}
}

// The caller's buffer belongs to the Kafka client and is reused.
func TestDecodeDoesNotRetainInput(t *testing.T) {
	in := readSample(t, "booking_confirmed.json")
	ev, err := events.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	raw := bytes.Clone(ev.RawData)
	for i := range in {
		in[i] = ' '
	}
	if !bytes.Equal(ev.RawData, raw) || ev.ID != "evt_01JD8X3R6YQ4M2ZK7W9T5B1N0C" {
		t.Error("Event shares memory with the input")
	}
}

func TestErrorsQuoteOnlyAPrefix(t *testing.T) {
	long := strings.Repeat("é", 5000)
	in := edited(t, "booking_confirmed.json", func(ev map[string]any) { obj(ev, "data.member")["locale"] = long })
	_, err := events.Decode(in)
	if err == nil {
		t.Fatal("Decode succeeded")
	}
	if len(err.Error()) > 200 || !strings.Contains(err.Error(), `é…"`) {
		t.Errorf("error = %q, want a short, cut quote", err)
	}
}

// Every zone of Go's tz database must pass; the name check in front of
// time.LoadLocation must not be stricter than the database.
func TestDecodeAcceptsEveryIANAZone(t *testing.T) {
	zr, err := zip.OpenReader(filepath.Join(runtime.GOROOT(), "lib", "time", "zoneinfo.zip"))
	if err != nil {
		t.Skipf("no zoneinfo.zip: %v", err)
	}
	defer zr.Close()
	var tmpl map[string]any
	if err := json.Unmarshal(readSample(t, "booking_confirmed.json"), &tmpl); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		obj(tmpl, "data.class")["time_zone"] = f.Name
		obj(tmpl, "data.member")["time_zone"] = f.Name
		b, err := json.Marshal(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := events.Decode(b); err != nil {
			t.Errorf("zone %q: %v", f.Name, err)
		}
		n++
	}
	if n < 300 {
		t.Errorf("only %d zones checked", n)
	}
}

func BenchmarkDecode(b *testing.B) {
	in := readSample(b, "booking_confirmed.json")
	// The baseline is the least any decoder of this payload must do, so the
	// ratio between the two is the cost of validation.
	b.Run("baseline=json.Unmarshal-map", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]any
			if err := json.Unmarshal(in, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.Decode(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decode+People", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			ev, err := events.Decode(in)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ev.People("member"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The event limit is exact: an event of MaxEventSize bytes decodes, one
// byte more is poison naming both sizes.
func TestDecodeSizeEdge(t *testing.T) {
	base := readSample(t, "booking_confirmed.json")
	at := func(size int) []byte {
		// Pad with a free-text field so the event is exactly size bytes.
		var ev map[string]any
		if err := json.Unmarshal(base, &ev); err != nil {
			t.Fatal(err)
		}
		ev["data"].(map[string]any)["note"] = ""
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Replace(b, []byte(`"note":""`), []byte(`"note":"`+strings.Repeat("a", size-len(b))+`"`), 1)
	}
	ok := at(events.MaxEventSize)
	if len(ok) != events.MaxEventSize {
		t.Fatalf("built %d bytes, want %d", len(ok), events.MaxEventSize)
	}
	if _, err := events.Decode(ok); err != nil {
		t.Errorf("event of exactly %d bytes: %v", len(ok), err)
	}
	over := at(events.MaxEventSize + 1)
	_, err := events.Decode(over)
	if failure.ClassOf(err) != failure.Poison || failure.ReasonOf(err) != failure.ReasonDecode ||
		!strings.Contains(err.Error(), fmt.Sprintf("event is %d bytes, more than the %d allowed", len(over), events.MaxEventSize)) {
		t.Errorf("event of %d bytes: %v, want poison naming both sizes", len(over), err)
	}
}
