package notification_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

func sample() *notification.Notification {
	n := &notification.Notification{
		EventID: "evt_1", EventType: "gym.booking.confirmed", Template: "gym.booking.confirmed",
		Channel: notification.Email, Locale: "en-GB", RecipientID: "mem_1", To: "emma@example.com",
		Data: notification.DataOf(map[string]string{"recipient_name": "Emma"}), Priority: notification.Normal,
		CreatedAt: time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC),
	}
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	return n
}

func TestNewIDDeterministicAndDistinct(t *testing.T) {
	a := notification.NewID("evt_1", "tpl", notification.Email, "mem_1", "a@example.com")
	if b := notification.NewID("evt_1", "tpl", notification.Email, "mem_1", "a@example.com"); a != b {
		t.Fatalf("ids differ for the same input: %s %s", a, b)
	}
	// Parts are length-prefixed: moving a boundary changes the id.
	others := []string{
		notification.NewID("evt_1t", "pl", notification.Email, "mem_1", "a@example.com"),
		notification.NewID("evt_2", "tpl", notification.Email, "mem_1", "a@example.com"),
		notification.NewID("evt_1", "tpl", notification.SMS, "mem_1", "a@example.com"),
		notification.NewID("evt_1", "tpl", notification.Email, "mem_2", "a@example.com"),
		notification.NewID("evt_1", "tpl", notification.Email, "mem_1", "b@example.com"),
	}
	for _, o := range others {
		if o == a {
			t.Errorf("collision: %s", o)
		}
	}
	if !strings.HasPrefix(a, "ntf_") || len(a) != 36 {
		t.Errorf("unexpected id shape %q", a)
	}
}

func TestRoundTrip(t *testing.T) {
	n := sample()
	b, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := notification.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != n.ID || got.To != n.To || got.Data.Get("recipient_name") != "Emma" || !got.CreatedAt.Equal(n.CreatedAt) {
		t.Errorf("round trip changed the notification: %+v", got)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := notification.Encode(sample())
	tamper := func(f func(n *notification.Notification)) string {
		n := sample()
		f(n)
		b, _ := notification.Encode(n)
		return string(b)
	}
	tests := []struct {
		name, in, want string
	}{
		{"not json", "{", "notification"},
		{"trailing", string(good) + "{}", "trailing"},
		{"bad utf8", "{\"id\":\"\xff\"}", "UTF-8"},
		{"neither form", "\xff", "format byte 0xff is neither"},
		{"oversize", `{"id":"` + strings.Repeat("x", notification.MaxEncodedSize) + `"}`, "limit"},
		{"unknown channel", tamper(func(n *notification.Notification) { n.Channel = "fax" }), "channel"},
		{"empty to", tamper(func(n *notification.Notification) { n.To = "" }), "to is empty"},
		{"id does not match", tamper(func(n *notification.Notification) { n.To = "other@example.com" }), "does not match"},
		{"negative attempt", tamper(func(n *notification.Notification) { n.Attempt = -1 }), "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := notification.Decode([]byte(tt.in))
			if err == nil {
				t.Fatal("accepted")
			}
			if failure.ClassOf(err) != failure.Poison {
				t.Errorf("class %v, want poison", failure.ClassOf(err))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// FuzzDecode feeds Decode both forms. Whatever it accepts is valid, and
// decode, encode, decode is stable: the same notification (DeepEqual),
// whose encoding encodes again to the same bytes — and for a binary input
// of this version's fields, to the input itself (one notification, one
// encoding).
func FuzzDecode(f *testing.F) {
	good, _ := notification.Encode(sample())
	f.Add(good)
	all, _ := notification.Encode(full())
	f.Add(all)
	for _, n := range variants() {
		b, _ := notification.Encode(n)
		f.Add(b)
		j, _ := notification.JSON(n)
		f.Add(j)
	}
	// Records a check over the whole front would pass (TestDecodeRejectsBinary).
	for _, c := range []struct {
		d        map[string]string
		old, new string
	}{{map[string]string{"keyXY": strings.Repeat("v", 0xac)}, "XY", "\xe2\x82"}, {manyPairs(127), "example.com", "example.co\xc3"}} {
		n := sample()
		n.Data = notification.DataOf(c.d)
		b, _ := notification.Encode(n)
		f.Add(bytes.Replace(b, []byte(c.old), []byte(c.new), 1))
	}
	later := append(append([]byte{0x01, 21}, all[2:]...), 2, 'h', 'i')
	f.Add(later)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"ntf_x","channel":"sms","data":{"a":"b"}}`))
	f.Add([]byte{0x01})
	var reused struct {
		n    notification.Notification
		data []notification.Field
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// DecodeShared reads a record in place: it answers as Decode does.
		d, derr := notification.Decode(b)
		sd, serr := notification.DecodeShared(bytes.Clone(b))
		if (derr == nil) != (serr == nil) || derr != nil && derr.Error() != serr.Error() || !reflect.DeepEqual(d, sd) {
			t.Fatalf("DecodeShared differs from Decode: %v, %v", derr, serr)
		}
		// DecodeSharedInto into what the previous input left (as a worker
		// reuses them, fields' room and all) answers as Decode does too.
		id, data, ierr := notification.DecodeSharedInto(bytes.Clone(b), &reused.n, reused.data)
		reused.data = data
		if (derr == nil) != (ierr == nil) || derr != nil && derr.Error() != ierr.Error() || !reflect.DeepEqual(d, id) {
			t.Fatalf("DecodeSharedInto differs from Decode: %v, %v", derr, ierr)
		}
		// Parse is Decode without Validate, so the round trip below is
		// held also for what a fuzzer rarely makes: a matching id.
		n, err := notification.Parse(b)
		// Checking the binary form's front in pieces answers as a check
		// of each string does: the same notification or the same error.
		if c, cerr := notification.ParseCheckingEach(b); (err == nil) != (cerr == nil) || err != nil && err.Error() != cerr.Error() || !reflect.DeepEqual(n, c) {
			t.Fatalf("Parse differs from a check of each string: %v, %v", err, cerr)
		}
		if err != nil {
			if failure.ClassOf(err) != failure.Poison || failure.ReasonOf(err) != failure.ReasonDecode {
				t.Fatalf("parse: not a poison decode error: %v", err)
			}
			if _, derr := notification.Decode(b); derr == nil {
				t.Fatalf("Decode accepts what Parse refuses (%v)", err)
			}
			return
		}
		if d, err := notification.Decode(b); err != nil {
			if failure.ClassOf(err) != failure.Poison || failure.ReasonOf(err) != failure.ReasonInvalid || n.Validate() == nil {
				t.Fatalf("decode of a parsed notification: %v", err)
			}
		} else if !reflect.DeepEqual(d, n) {
			t.Fatalf("Decode and Parse differ")
		} else if err := n.Validate(); err != nil {
			// Decode leaves Data's UTF-8 to Parse; Validate checks it too.
			t.Fatalf("Decode accepts what Validate refuses: %v", err)
		}
		b2, err := notification.Encode(n)
		if err != nil {
			// A notification of new-notification size (no retry state)
			// may take more than that limit when it arrives near
			// MaxEncodedSize.
			if failure.ReasonOf(err) == failure.ReasonTooLarge && len(b) > notification.MaxEncodedSize-1<<10 {
				return
			}
			t.Fatalf("re-encode: %v", err)
		}
		n2, err := notification.Parse(b2)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !same(n, n2) {
			t.Fatalf("decode, encode, decode changed it:\n%#v\n%#v", n, n2)
		}
		if fieldCount(b) == 20 && (!reflect.DeepEqual(n, n2) || !bytes.Equal(b, b2)) {
			t.Fatalf("a binary notification re-encodes differently:\n%x\n%x", b, b2)
		}
		b3, err := notification.Encode(n2)
		if err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("encoding is not stable: %v", err)
		}
		// And the binary form reads back as its JSON form does.
		j, err := notification.JSON(n2)
		if err != nil {
			t.Fatalf("no readable form: %v", err)
		}
		if len(b2) > len(j) {
			t.Fatalf("the binary form (%d bytes) is longer than the JSON form (%d)", len(b2), len(j))
		}
		if len(j) <= notification.MaxEncodedSize {
			nj, err := notification.Parse(j)
			if err != nil || !reflect.DeepEqual(nj, n2) {
				t.Fatalf("the JSON form reads back differently (%v):\n%#v\n%#v", err, nj, n2)
			}
		}
	})
}

// same reports whether a and b are the same notification, their times the
// same instants at the same zone offsets. The JSON form reads "+00:00" as
// the local zone when it is UTC, which the binary form (like the JSON
// form's own "Z") reads as UTC.
func same(a, b *notification.Notification) bool {
	x, y := *a, *b
	for _, p := range [][2]*time.Time{{&x.CreatedAt, &y.CreatedAt}, {&x.NotBefore, &y.NotBefore}, {&x.FirstFailedAt, &y.FirstFailedAt},
		{&x.DueAt, &y.DueAt}, {&x.ExpiresAt, &y.ExpiresAt}} {
		_, o1 := p[0].Zone()
		_, o2 := p[1].Zone()
		if !p[0].Equal(*p[1]) || o1 != o2 || p[0].IsZero() != p[1].IsZero() {
			return false
		}
		*p[0], *p[1] = time.Time{}, time.Time{}
	}
	return reflect.DeepEqual(x, y)
}

// NewID hashes exactly what it hashed with fmt.Fprintf: ids already on the
// topics, in the idempotency store and in dead letters stay the same.
func TestNewIDUnchanged(t *testing.T) {
	old := func(parts ...string) string {
		h := sha256.New()
		for _, p := range parts {
			fmt.Fprintf(h, "%d:%s|", len(p), p)
		}
		return "ntf_" + hex.EncodeToString(h.Sum(nil)[:16])
	}
	long := strings.Repeat("é", 300)
	for _, p := range [][5]string{
		{"evt_1", "tpl", "email", "mem_1", "a@example.com"},
		{"", "", "", "", ""},
		{long, long, "sms", long, "+447700900123"},
	} {
		if got, want := notification.NewID(p[0], p[1], notification.Channel(p[2]), p[3], p[4]), old(p[:]...); got != want {
			t.Errorf("NewID%q = %s, was %s", p, got, want)
		}
	}
}

// TestDecodeSharedReadsInPlace: the worker's decode takes its strings from
// the fetched record instead of a copy of it.
func TestDecodeSharedReadsInPlace(t *testing.T) {
	b, err := notification.Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	n, err := notification.DecodeShared(b)
	if err != nil {
		t.Fatal(err)
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(n.ID)))
	if start := uintptr(unsafe.Pointer(&b[0])); p < start || p >= start+uintptr(len(b)) {
		t.Fatal("DecodeShared's id is not read from the record")
	}
	if n2, _ := notification.Decode(b); unsafe.StringData(n2.ID) == unsafe.StringData(n.ID) {
		t.Fatal("Decode reads its strings from the caller's bytes")
	}
}

// TestDecodeSharedIntoAllocatesNothing: decoding a record into the
// caller's notification and fields' room, as a channel worker does for
// every record, allocates nothing once the room has grown. It made a notification
// it then did not use, ~300 bytes per record (issue 14, nineteenth pass).
func TestDecodeSharedIntoAllocatesNothing(t *testing.T) {
	n := notification.Notification{EventID: "e_1", EventType: "gym.booking.confirmed", Template: "booking_confirmed",
		Channel: "email", Locale: "en", RecipientID: "mem_1", To: "a@example.com", Priority: notification.Normal,
		Data: notification.DataOf(map[string]string{"class_name": "Spin 45", "recipient_first_name": "Ada"}), CreatedAt: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)}
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	b, err := notification.Encode(&n)
	if err != nil {
		t.Fatal(err)
	}
	var into notification.Notification
	var data []notification.Field
	decode := func() {
		var err error
		if _, data, err = notification.DecodeSharedInto(b, &into, data); err != nil {
			t.Fatal(err)
		}
	}
	decode()
	if a := testing.AllocsPerRun(100, decode); a != 0 {
		t.Errorf("DecodeSharedInto made %.0f allocations per record", a)
	}
}
