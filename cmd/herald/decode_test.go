package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/notification"
)

// herald decode shows a channel-topic record whichever form it is in, and
// says why bytes that are not a notification are not one.
func TestDecode(t *testing.T) {
	n := &notification.Notification{EventID: "evt_1", EventType: "gym.booking.confirmed", Template: "gym.booking.confirmed",
		Channel: notification.Email, RecipientID: "mem_1", To: "ana@example.com", Locale: "en",
		Data: notification.DataOf(map[string]string{"class_name": "Spin <45>"}), CreatedAt: time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)}
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	bin, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	js, err := notification.JSON(n)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{"binary": bin, "json": js} {
		var out, errOut bytes.Buffer
		if code := decode(bytes.NewReader(in), &out, &errOut); code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, errOut.String())
		}
		if got := strings.TrimSpace(out.String()); got != string(js) {
			t.Errorf("%s: printed %s, want %s", name, got, js)
		}
	}
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"empty":     {nil, "stdin is empty"},
		"truncated": {bin[:len(bin)/2], "are not a notification"},
		"garbage":   {[]byte("hello"), "are not a notification"},
		"wrong id":  {bytes.Replace(js, []byte(n.ID), []byte("ntf_00000000000000000000000000000000"), 1), "not valid"},
	} {
		var out, errOut bytes.Buffer
		if code := decode(bytes.NewReader(tc.in), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", name, code, errOut.String(), tc.want)
		}
	}
}
