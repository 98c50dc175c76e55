package notification

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestFrontInPieces: decodeBinaryWith answers in its first pass, without
// errCheckEach and with the notification encoded, for records whose front
// is valid, whatever the lengths of their strings (a push token is over
// 127 bytes); only invalid UTF-8 sends it to the second.
func TestFrontInPieces(t *testing.T) {
	pairs := map[string]string{}
	for i := range 200 {
		pairs[fmt.Sprintf("k%03d", i)] = "v"
	}
	for name, change := range map[string]func(*Notification){
		"ASCII": func(*Notification) {},
		"non-ASCII": func(n *Notification) {
			n.Data = DataOf(map[string]string{"class_name": "Zoë's Pilates — Früh", "z": "Renée"})
		},
		"push token": func(n *Notification) { n.Channel, n.To = Push, strings.Repeat("fcmToken_", 18) },
		"long value": func(n *Notification) {
			n.Data = DataOf(map[string]string{"a": "é", "b": strings.Repeat("Zoë ", 60), "c": "ü"})
		},
		"200 pairs":   func(n *Notification) { n.Data = DataOf(pairs) },
		"no data":     func(n *Notification) { n.Data = Data{} },
		"empty value": func(n *Notification) { n.Data = DataOf(map[string]string{"a": "", "b": "ü"}) },
	} {
		n := &Notification{EventID: "evt_1", EventType: "gym.booking.confirmed", Template: "gym.booking.confirmed",
			Channel: Email, Locale: "en-GB", RecipientID: "mem_1", To: "emma@example.com",
			Data: DataOf(map[string]string{"recipient_name": "Emma"}), Priority: Normal, CreatedAt: time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)}
		change(n)
		n.ID = NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
		b, err := Encode(n)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := decodeBinaryWith(string(b), nil, true); err != nil {
			t.Errorf("%s: the first pass answered %v", name, err)
		} else if !reflect.DeepEqual(got, n) {
			t.Errorf("%s: decoded %+v, want %+v", name, got, n)
		}
		bad := strings.Replace(string(b), "mem_1", "me\xc3_1", 1) // the same length
		if _, err := decodeBinaryWith(bad, nil, true); err != errCheckEach {
			t.Errorf("%s: with invalid UTF-8 in the front, the first pass answered %v, want errCheckEach", name, err)
		}
	}
}
