package notification_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/notification"
)

func benchNotification(b *testing.B) []byte {
	n := notification.Notification{
		EventID: "evt_0001", EventType: "gym.class.cancelled", Template: "gym.class.cancelled", Channel: notification.Email,
		Locale: "en", RecipientID: "mem_0001", To: "emma.clarke@example.com", Priority: "high", CreatedAt: time.Now().UTC(),
		Data: notification.DataOf(map[string]string{}),
	}
	for _, k := range []string{"recipient_name", "recipient_first_name", "class_name", "class_id", "class_starts_at", "class_ends_at",
		"class_location", "class_date", "class_time", "instructor_name", "instructor_email", "booking_id", "reason", "gym_name",
		"time_zone", "locale", "member_id", "studio", "duration_minutes", "spots_left"} {
		n.Data = n.Data.With(notification.Field{Key: k, Value: "some value for " + k})
	}
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	raw, err := notification.Encode(&n)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkDecode is the channel worker's first step per record: herald's
// Decode (size and UTF-8 checks, the binary form or strict single-object
// JSON, validation and id check) of the binary form Encode writes and of
// the JSON form it wrote before, against plain json.Unmarshal into the
// struct, in the same run.
func BenchmarkDecode(b *testing.B) {
	raw := benchNotification(b)
	n, err := notification.Decode(raw)
	if err != nil {
		b.Fatal(err)
	}
	js, err := notification.JSON(n)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("herald/binary", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := notification.Decode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A push record: FCM registration tokens are over 127 bytes (this one
	// 162), so the address's length takes two bytes.
	pn := *n
	pn.Channel, pn.To = notification.Push, strings.Repeat("dGhpcyBpcyBhbiBGQ00gdG9rZW4", 6)
	pn.ID = notification.NewID(pn.EventID, pn.Template, pn.Channel, pn.RecipientID, pn.To)
	push, err := notification.Encode(&pn)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("herald/binary/push", func(b *testing.B) {
		b.SetBytes(int64(len(push)))
		for b.Loop() {
			if _, err := notification.Decode(push); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("herald/json", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			if _, err := notification.Decode(js); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Decoder", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			var n notification.Notification
			if err := json.NewDecoder(bytes.NewReader(js)).Decode(&n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			var n notification.Notification
			if err := json.Unmarshal(js, &n); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncode is the dispatcher's and a retrying worker's last step per
// notification, for the same notification as BenchmarkDecode: Encode
// (binary) against the JSON form with Encode's limits (EncodeJSON, what
// Encode was before).
func BenchmarkEncode(b *testing.B) {
	raw := benchNotification(b)
	n, err := notification.Decode(raw)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("herald/binary", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := notification.Encode(n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("herald/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := notification.EncodeJSON(n); err != nil {
				b.Fatal(err)
			}
		}
	})
}
