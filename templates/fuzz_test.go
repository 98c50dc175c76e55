package templates_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
)

// FuzzRender feeds arbitrary values (they come from producers, via Kafka)
// into the confirmation email and its calendar invite: rendering must not
// panic, and the invite must stay well framed, whatever the data.
func FuzzRender(f *testing.F) {
	f.Add("Spin 45", "Emma Clarke", "Studio 2, Shoreditch", "2026-11-23T07:00:00Z")
	f.Add("a;b,c\\d\r\n", "Ana <b>Díaz</b>", "\"quoted\" : here", "not a time")
	f.Add(strings.Repeat("é", 80), "\x00\x7f", strings.Repeat("💪", 30), "")
	s := embedded(f)
	n := only(plan(f, s, decode(f, sample(f, events.BookingConfirmed, "member-en.json"))), notification.Email)[0]
	f.Fuzz(func(t *testing.T, class, name, location, starts string) {
		n := n
		n.Data = with(n.Data, "class_name", class, "recipient_name", name, "class_location", location, "class_starts_at", starts)
		m, err := s.Render(&n)
		if err != nil {
			return // a render error is a permanent failure, which is fine
		}
		if strings.ContainsAny(m.Subject, "\r\n") {
			t.Errorf("subject has a line break: %q", m.Subject)
		}
		ics := string(m.Attachments[0].Data)
		for _, l := range strings.Split(strings.TrimSuffix(ics, "\r\n"), "\r\n") {
			if len(l) > 75 || strings.ContainsAny(l, "\r\n") {
				t.Errorf("bad content line %q", l)
			}
			if utf8.ValidString(class+name+location) && !utf8.ValidString(l) {
				t.Errorf("fold split a rune: %q", l)
			}
		}
	})
}
