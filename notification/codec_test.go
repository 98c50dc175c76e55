package notification_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// full is a notification with every field set, times in several zones.
func full() *notification.Notification {
	n := sample()
	n.EventType = "gym.class.reminder"
	n.Data = notification.DataOf(map[string]string{"recipient_name": "Émma <b>&", "class_name": "Spin \"45\"", "": "empty key", "z": "", "emoji": "🚴\u2028\x00"})
	n.Priority = notification.High
	n.CreatedAt = time.Date(2026, 11, 23, 7, 0, 0, 123456789, time.UTC)
	n.Attempt = 3
	n.NotBefore = time.Date(2026, 11, 23, 8, 0, 0, 1, time.FixedZone("CET", 3600))
	n.FirstFailedAt = time.Date(2026, 11, 23, 7, 30, 0, 0, time.FixedZone("", -5*3600-30*60))
	n.Category = "reminders"
	n.TimeZone = "Europe/London"
	n.DueAt = time.Date(2026, 11, 24, 5, 0, 0, 0, time.Local)
	n.Deferred = notification.DeferQuietHours
	n.CancelKeys = []string{"booking:bk_1", "class:cls_9"}
	n.ExpiresAt = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	return n
}

// variants are notifications whose binary round trip must equal their
// JSON one exactly.
func variants() map[string]*notification.Notification {
	vs := map[string]*notification.Notification{"sample": sample(), "full": full()}
	n := sample()
	n.Data = notification.Data{}
	vs["nil data"] = n
	n = sample()
	n.Data = notification.DataOf(map[string]string{})
	vs["empty data"] = n
	n = sample()
	n.CancelKeys = []string{}
	vs["empty cancel keys"] = n
	n = sample()
	n.CreatedAt = time.Time{}
	vs["zero created_at"] = n
	n = sample()
	n.CreatedAt = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	n.DueAt = time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC)
	vs["year 0 and before 1970"] = n
	n = sample()
	n.CreatedAt = time.Now() // monotonic reading, local zone
	vs["now"] = n
	if london, err := time.LoadLocation("Europe/London"); err == nil {
		n = sample()
		n.DueAt = time.Date(2026, 7, 1, 9, 0, 0, 0, london)      // +01:00
		n.ExpiresAt = time.Date(2026, 12, 1, 9, 0, 0, 0, london) // +00:00: written as UTC
		vs["london"] = n
	}
	return vs
}

// The binary form reads back exactly what the JSON form did: the same
// values, zones and nil-ness, compared with reflect.DeepEqual.
func TestBinaryMatchesJSON(t *testing.T) {
	for name, n := range variants() {
		t.Run(name, func(t *testing.T) {
			bin, err := notification.Encode(n)
			if err != nil {
				t.Fatal(err)
			}
			if bin[0] != 0x01 {
				t.Fatalf("binary form starts with %#x", bin[0])
			}
			js, err := notification.JSON(n)
			if err != nil {
				t.Fatal(err)
			}
			if len(bin) > len(js) {
				t.Errorf("binary %d bytes, JSON %d", len(bin), len(js))
			}
			fromBin, err := notification.Decode(bin)
			if err != nil {
				t.Fatalf("binary: %v", err)
			}
			fromJSON, err := notification.Decode(js)
			if err != nil {
				t.Fatalf("JSON: %v", err)
			}
			if !reflect.DeepEqual(fromBin, fromJSON) {
				t.Errorf("binary and JSON read back differently:\nbinary %#v\nJSON   %#v", fromBin, fromJSON)
			}
			if fromBin.CreatedAt.IsZero() != n.CreatedAt.IsZero() || !fromBin.CreatedAt.Equal(n.CreatedAt) || !fromBin.DueAt.Equal(n.DueAt) {
				t.Errorf("times changed: %v %v", fromBin.CreatedAt, fromBin.DueAt)
			}
			again, err := notification.Encode(fromBin)
			if err != nil || !bytes.Equal(again, bin) {
				t.Errorf("re-encoding differs (%v):\n%x\n%x", err, again, bin)
			}
			if j2, _ := notification.JSON(fromBin); !bytes.Equal(j2, js) {
				t.Errorf("readable form differs:\n%s\n%s", j2, js)
			}
			if r := notification.Readable(bin); !bytes.Equal(r, js) {
				t.Errorf("Readable = %s, want %s", r, js)
			}
		})
	}
}

func TestEncodeDeterministic(t *testing.T) {
	n := full()
	for i := range 50 {
		n.Data = n.Data.With(notification.Field{Key: fmt.Sprintf("k%02d", i), Value: "v"})
	}
	first, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		c := *n
		c.Data = notification.DataOf(n.Data.Map()) // made again, from a map's order
		if b, _ := notification.Encode(&c); !bytes.Equal(b, first) {
			t.Fatal("the same notification encoded to different bytes")
		}
	}
}

// Whatever Encode encoded before, a notification is the same bytes, with
// its own keys and values: data of the same size with other keys, other
// values, invalid UTF-8 in a value, no data, empty data. (Encode once
// remembered the key order of the last map it sorted.)
func TestEncodeDataWhateverCameBefore(t *testing.T) {
	datas := []map[string]string{
		{"a": "1", "b": "2", "c": "3"},
		{"a": "1", "b": "2", "d": "3"},
		{"a": "4", "b": "5", "c": "6"},
		{"a": "1", "b": "2", "c": "\xff"},
		{"c\xff": "1", "b": "2", "a": "3"},
		{"b": "2", "c": "3"},
		nil,
		{},
		{"a": "1", "b": "2", "c": "3", "d": "4"},
	}
	encode := func(d map[string]string) []byte {
		n := sample()
		n.Data = notification.DataOf(d)
		b, err := notification.Encode(n)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := make([][]byte, len(datas))
	for i, d := range datas {
		want[i] = encode(d)
		n, err := notification.Decode(want[i]) // keys strictly ascending
		if err != nil {
			t.Fatalf("%v: %v", d, err)
		}
		if i == 3 && n.Data.Get("c") != "\uFFFD" {
			t.Errorf("%v decoded as %q, want c coerced", d, n.Data)
		} else if i != 3 && i != 4 && !reflect.DeepEqual(n.Data.Map(), d) {
			t.Errorf("%v decoded as %q", d, n.Data)
		}
	}
	for i, before := range datas {
		for j, d := range datas {
			encode(before)
			if got := encode(d); !bytes.Equal(got, want[j]) {
				t.Errorf("%v after %v: other bytes", d, datas[i])
			}
		}
	}
	// And at once, from several goroutines (go test -race).
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				j := (g + i) % len(datas)
				n := sample()
				n.Data = notification.DataOf(datas[j])
				if got, err := notification.Encode(n); err != nil || !bytes.Equal(got, want[j]) {
					t.Errorf("%v concurrently: other bytes (%v)", datas[j], err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// Invalid UTF-8 is written as U+FFFD per byte, as the JSON Encode wrote it,
// and reads back as the JSON form does.
func TestEncodeCoercesInvalidUTF8(t *testing.T) {
	n := sample()
	n.Locale = "en\xff"
	n.Data = notification.DataOf(map[string]string{"a\xff": "1", "a\xfe": "2", "note": "x\xc3y"})
	n.CancelKeys = []string{"k\x80"}
	bin, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := notification.JSON(n)
	fromBin, err := notification.Decode(bin)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := notification.Decode(js)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromBin, fromJSON) {
		t.Errorf("binary %#v\nJSON   %#v", fromBin, fromJSON)
	}
	if fromBin.Locale != "en\uFFFD" || fromBin.Data.Get("a\uFFFD") != "1" || fromBin.Data.Get("note") != "x\uFFFDy" {
		t.Errorf("coerced to %q %q", fromBin.Locale, fromBin.Data)
	}
}

func TestEncodeRefusesWhatJSONCannotHold(t *testing.T) {
	for name, tm := range map[string]time.Time{
		"year 10000":  time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		"year -1":     time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		"offset 24 h": time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)),
	} {
		n := sample()
		n.DueAt = tm
		if _, err := notification.JSON(n); err == nil {
			t.Errorf("%s: the JSON form takes it; the test is wrong", name)
		}
		if _, err := notification.Encode(n); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

// Records written before the binary form, as the JSON Encode wrote them,
// still decode (rolling deploys, the DLQ).
func TestDecodeReadsOldJSON(t *testing.T) {
	const old = `{"id":"ntf_5d0a4d0c2f5b9a7d6c0b1e0f3a2b1c4d","event_id":"evt_1","event_type":"gym.booking.confirmed","template":"gym.booking.confirmed","channel":"email","locale":"en-GB","recipient_id":"mem_1","to":"emma@example.com","data":{"recipient_name":"Emma"},"priority":"normal","created_at":"2026-11-23T07:00:00Z","attempt":0}`
	n := sample()
	b := []byte(strings.Replace(old, "ntf_5d0a4d0c2f5b9a7d6c0b1e0f3a2b1c4d", n.ID, 1))
	for _, in := range [][]byte{b, append([]byte(" \n\t\r"), b...)} {
		got, err := notification.Decode(in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, n) {
			t.Errorf("got %#v\nwant %#v", got, n)
		}
	}
}

// corrupt returns the encoding of sample with every occurrence of old in
// it replaced by new (the same length).
func corrupt(t *testing.T, n *notification.Notification, old, new string) []byte {
	t.Helper()
	b, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%q is not in the encoding", old)
	}
	return bytes.ReplaceAll(b, []byte(old), []byte(new))
}

func TestDecodeRejectsBinary(t *testing.T) {
	good, _ := notification.Encode(sample())
	withData := func(d map[string]string) *notification.Notification {
		n := sample()
		n.Data = notification.DataOf(d)
		return n
	}
	// header: 0x01, field count 20, then the id's length (36) and the id.
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"unknown format byte", append([]byte{0x02}, good[1:]...), "format byte"},
		{"too few fields", append([]byte{0x01, 19}, good[2:]...), "at least 20"},
		// 2^40 fields: said to be too many for the record, not too few
		// (the outside tester's report).
		{"more fields than bytes", append([]byte{0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20}, good[2:]...), "1099511627776 fields cannot fit in a"},
		{"plain text", []byte("hello, world"), `format byte 0x68 ('h') is neither`},
		{"trailing", append(append([]byte{}, good...), 0), "trailing"},
		{"varint not shortest", append([]byte{0x01, 0x94, 0x00}, good[2:]...), "shortest"},
		{"length past the end", append([]byte{0x01, 20, 0xff, 0x7f}, good[3:]...), "left"},
		{"invalid UTF-8 in id", corrupt(t, sample(), "ntf_", "\xffcf_"), "id at byte"},
		{"invalid UTF-8 in to", corrupt(t, sample(), "emma@", "\xe9mma@"), "to at byte"},
		{"invalid UTF-8 in locale", corrupt(t, sample(), "en-GB", "en-\xc3B"), "locale"},
		{"invalid UTF-8 in a data key", corrupt(t, sample(), "recipient_name", "recipient_nam\xff"), "data key"},
		{"invalid UTF-8 in a data value", corrupt(t, sample(), "Emma", "Em\xed\xa0"), "data value"},
		// Checked in one call over the record's front, these two would
		// pass: the key's last two bytes and the value's two-byte length
		// make "€", the address's last byte and the data's two-byte count
		// "À" (decodeBinaryWith).
		{"a character across a key and its value's long length", corrupt(t, withData(map[string]string{"keyXY": strings.Repeat("v", 0xac)}), "keyXY", "key\xe2\x82"), "data key"},
		{"a character across the address and a long data count", corrupt(t, withData(manyPairs(127)), "example.com", "example.co\xc3"), "to at byte"},
		{"invalid UTF-8 in a cancel key", corrupt(t, full(), "booking:", "booking\xc0"), "cancel key"},
		{"invalid UTF-8 in priority", corrupt(t, sample(), "normal", "norma\xff"), "priority"},
		{"data keys out of order", corrupt(t, withData(map[string]string{"a1": "x", "b2": "y"}), "b2", "a0"), "ascending"},
		{"data keys repeated", corrupt(t, withData(map[string]string{"a1": "x", "b2": "y"}), "b2", "a1"), "ascending"},
		{"unknown time kind", corrupt(t, sample(), "\x01\xe0", "\x07\xe0"), "time kind"},
		{"truncated", good[:len(good)-1], "truncated"},
		{"id does not match", corrupt(t, sample(), "emma@", "emmb@"), "does not match"},
		{"unknown channel", corrupt(t, sample(), "\x05email", "\x05fmail"), "channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := notification.Decode(tt.in)
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
	// Every proper prefix is refused, never a panic.
	b, _ := notification.Encode(full())
	for i := range len(b) {
		if _, err := notification.Decode(b[:i]); err == nil {
			t.Errorf("a %d-byte prefix of %d decodes", i, len(b))
		}
	}
}

// manyPairs is data of n keys, k000 to k(n-1).
func manyPairs(n int) map[string]string {
	d := make(map[string]string, n)
	for i := range n {
		d[fmt.Sprintf("k%03d", i)] = "v"
	}
	return d
}

// A writer of a later version appends fields, each a length and bytes; this
// reader skips them and refuses a count it cannot find.
func TestDecodeSkipsAppendedFields(t *testing.T) {
	n := full()
	b, _ := notification.Encode(n)
	later := []byte{0x01, 22}
	later = append(later, b[2:]...)
	later = append(later, 3, 'a', 'b', 'c', 0)
	got, err := notification.Decode(later)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := notification.Decode(b)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
	if _, err := notification.Decode(later[:len(later)-1]); err == nil {
		t.Error("a missing appended field decodes")
	}
	later[1] = 23
	if _, err := notification.Decode(later); err == nil {
		t.Error("an appended field past the end decodes")
	}
}

// EncodeJSON is the JSON form under Encode's limits.
func TestEncodeJSON(t *testing.T) {
	n := sample()
	b, err := notification.EncodeJSON(n)
	if err != nil || b[0] != '{' {
		t.Fatalf("%s, %v", b, err)
	}
	if got, err := notification.Decode(b); err != nil || !reflect.DeepEqual(got, n) {
		t.Errorf("%#v, %v", got, err)
	}
	n.Data = n.Data.With(notification.Field{Key: "note", Value: strings.Repeat("\"", notification.MaxEncodedSize/2)})
	if _, err := notification.Encode(n); err != nil {
		t.Errorf("binary: %v", err)
	}
	if _, err := notification.EncodeJSON(n); failure.ReasonOf(err) != failure.ReasonTooLarge {
		t.Errorf("JSON twice the size: %v, want too_large", err)
	}
}

func TestReadableLeavesOthersAlone(t *testing.T) {
	for _, in := range []string{"", "{", `{"id":"x"}`, "\x01\x14", "\xff"} {
		if got := notification.Readable([]byte(in)); string(got) != in {
			t.Errorf("Readable(%q) = %q", in, got)
		}
	}
}

// fieldCount is the field count of a binary notification, 0 if b is not one.
func fieldCount(b []byte) uint64 {
	if len(b) < 2 || b[0] != 0x01 {
		return 0
	}
	c, _ := binary.Uvarint(b[1:])
	return c
}

// A zone offset with seconds (a historical local mean time) keeps its
// instant exactly and its offset in whole minutes, as RFC 3339 writes it.
func TestSubMinuteOffset(t *testing.T) {
	n := sample()
	n.DueAt = time.Date(1847, 12, 1, 9, 0, 0, 0, time.FixedZone("LMT", -75))
	b, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := notification.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, off := got.DueAt.Zone(); !got.DueAt.Equal(n.DueAt) || off != -60 {
		t.Errorf("due_at %v (offset %d), want the instant %v at -60", got.DueAt, off, n.DueAt)
	}
}

// An empty value says so, rather than "unexpected end of JSON input": the
// first byte picks the form, and an empty value has none (outside tester).
func TestDecodeEmptyValue(t *testing.T) {
	_, err := notification.Decode(nil)
	if err == nil || !strings.Contains(err.Error(), "value is empty") || failure.ClassOf(err) != failure.Poison {
		t.Fatalf("Decode(empty) = %v, want a poison error saying the value is empty", err)
	}
}
