package notification_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

func sample() *notification.Notification {
	n := &notification.Notification{
		EventID: "evt_1", EventType: "gym.booking.confirmed", Template: "gym.booking.confirmed",
		Channel: notification.Email, Locale: "en-GB", RecipientID: "mem_1", To: "emma@example.com",
		Data: map[string]string{"recipient_name": "Emma"}, Priority: notification.Normal,
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
	if got.ID != n.ID || got.To != n.To || got.Data["recipient_name"] != "Emma" || !got.CreatedAt.Equal(n.CreatedAt) {
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
		{"bad utf8", "\xff", "UTF-8"},
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

func FuzzDecode(f *testing.F) {
	good, _ := notification.Encode(sample())
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"ntf_x","channel":"sms","data":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := notification.Decode(b)
		if err != nil {
			if failure.ClassOf(err) != failure.Poison {
				t.Fatalf("non-poison error %v", err)
			}
			return
		}
		if err := n.Validate(); err != nil {
			t.Fatalf("decoded but invalid: %v", err)
		}
		// What decodes must re-encode and decode to the same id.
		b2, err := notification.Encode(n)
		if err != nil {
			t.Fatal(err)
		}
		n2, err := notification.Decode(b2)
		if err != nil || n2.ID != n.ID {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
