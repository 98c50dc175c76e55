package notification_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gymhq/herald/notification"
)

// reflectJSON is notification.JSON as it was, by encoding/json with HTML
// escaping off: what the hand-written encoder must write byte for byte.
// Data is written as the map[string]string it was, not by its own
// MarshalJSON, so that the reference owes nothing to the code under test.
func reflectJSON(n *notification.Notification) ([]byte, error) {
	encode := func(v any) ([]byte, error) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
		return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
	}
	c := *n
	c.Data = notification.Data{}
	b, err := encode(&c)
	if err != nil {
		return nil, err
	}
	m, err := encode(n.Data.Map())
	if err != nil {
		return nil, err
	}
	// The first "data":null is the field: within a string its quotes
	// would be escaped.
	return bytes.Replace(b, []byte(`"data":null`), append([]byte(`"data":`), m...), 1), nil
}

// FuzzJSONAsEncodingJSON: JSON writes what encoding/json writes, for any
// strings (escapes, invalid UTF-8, U+2028), data, cancel keys and times
// (zero, with zones, and outside what RFC 3339 can write, which both
// refuse).
func FuzzJSONAsEncodingJSON(f *testing.F) {
	f.Add("ntf_1", "evt\"1\\", "email", "a\x00b\u2028c<>&", "k1=v1;k2=\xff", "ck1;ck2", int64(1764000000123456789), int64(0), 3, int16(60))
	f.Add("", "", "", "", "", "", int64(0), int64(-62135596800000000), 0, int16(0))
	f.Add("x", "y", "sms", "\t\n\r\b\f\x7f", "=", ";", int64(253402300800000000), int64(1), -1, int16(-330))
	f.Fuzz(func(t *testing.T, id, event, channel, text, data, keys string, at, other int64, attempt int, offsetMinutes int16) {
		zone := time.FixedZone("z", int(offsetMinutes)*7) // some offsets with seconds, which RFC 3339 cannot write
		tm := func(ns int64) time.Time {
			if ns == 0 {
				return time.Time{}
			}
			return time.Unix(0, ns).In(zone)
		}
		n := &notification.Notification{
			ID: id, EventID: event, EventType: text, Template: id + text, Channel: notification.Channel(channel),
			Locale: text, RecipientID: event, To: text, Priority: notification.Priority(channel),
			CreatedAt: tm(at), Attempt: attempt, NotBefore: tm(other), FirstFailedAt: tm(at ^ other),
			Category: text, TimeZone: id, DueAt: tm(other / 3), Deferred: event, ExpiresAt: tm(at / 7),
		}
		if data != "" {
			n.Data = notification.DataOf(map[string]string{})
			for _, kv := range strings.Split(data, ";") {
				k, v, _ := strings.Cut(kv, "=")
				n.Data = n.Data.With(notification.Field{Key: k, Value: v})
			}
		}
		if keys != "" {
			n.CancelKeys = strings.Split(keys, ";")
		} else if attempt%2 == 0 {
			n.CancelKeys = []string{} // empty, not nil: omitted too
		}
		want, werr := reflectJSON(n)
		got, gerr := notification.JSON(n)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("errors differ: encoding/json %v, JSON %v", werr, gerr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("JSON differs from encoding/json:\n got %s\nwant %s", got, want)
		}
		if gerr == nil {
			// What herald writes, it reads back without reflection.
			read, ok := notification.ReadJSON(got)
			if !ok {
				t.Fatalf("ReadJSON refused what JSON wrote: %s", got)
			}
			if u, err := notification.UnmarshalJSON(got); err != nil || !reflect.DeepEqual(read, u) {
				t.Fatalf("ReadJSON read %s as\n%+v\nencoding/json as\n%+v (%v)", got, read, u, err)
			}
		}
	})
}

// FuzzReadJSON holds the JSON form's reader to encoding/json: whatever it
// reads, encoding/json reads alike; what it refuses, encoding/json decides.
func FuzzReadJSON(f *testing.F) {
	n := full()
	b, err := notification.JSON(n)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	n.Data, n.CancelKeys, n.NotBefore, n.DueAt, n.Category = notification.Data{}, nil, time.Time{}, time.Time{}, ""
	n.To = "q\"\\ \u00e9 \x01 \u2028 é"
	if b, err = notification.JSON(n); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"id":"a","event_id":"","event_type":"","template":"","channel":"email","locale":"","recipient_id":"","to":"x\ud83d\ude00\ud83d","data":{"k":"v","k":"w"},"priority":"","created_at":"2026-12-07T06:30:46+01:00","attempt":-0,"cancel_keys":[]}`))
	f.Add([]byte(`{"id":"a","event_id":"","event_type":"","template":"","channel":"email","locale":"","recipient_id":"","to":"","data":{},"priority":"","created_at":"2026-12-07T06:30:46Z","attempt":1.0}`))
	f.Add([]byte(`{"id":"a","event_id":"","event_type":"","template":"","channel":"email","locale":"","recipient_id":"","to":"","data":null,"priority":"","created_at":"0001-01-01T00:00:00Z","attempt":99999999999999999999}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return // Decode refuses it before reading
		}
		read, ok := notification.ReadJSON(b)
		if !ok {
			return
		}
		u, err := notification.UnmarshalJSON(b)
		if err != nil {
			t.Fatalf("ReadJSON read %q; encoding/json: %v", b, err)
		}
		if !reflect.DeepEqual(read, u) {
			t.Fatalf("ReadJSON read %q as\n%+v\nencoding/json as\n%+v", b, read, u)
		}
	})
}

// BenchmarkJSON is the readable form by hand against encoding/json, on a
// planned notification's shape (full(): every field, a data map).
func BenchmarkJSON(b *testing.B) {
	n := full()
	for _, c := range []struct {
		name string
		enc  func(*notification.Notification) ([]byte, error)
	}{{"encoding-json", reflectJSON}, {"by-hand", notification.JSON}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.enc(n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
