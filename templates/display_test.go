package templates_test

import (
	"strings"
	"testing"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/notification"
)

// hostile wraps v in what must never reach a person's screen: C0 and C1
// controls, a terminal escape sequence, an OSC title sequence, and every
// bidirectional override, isolate and mark. Decoding must strip all of it,
// leaving v.
func hostile(v string) string {
	return v[:2] + "\x00\x07\x1b[31m\u202e\u202a\u202b\u202c\u202d" + v[2:] + "\x1b[0m\u2066\u2067\u2068\u2069\u200e\u200f\u061c\x1b]0;pwned\x07\x7f\u0080\u009f"
}

// forbidden reports the first character in s that display text must not
// hold, or -1.
func forbidden(s string) rune {
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			// layout of multi-line bodies, from the templates themselves
		case r < 0x20, r >= 0x7f && r <= 0x9f,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			return r
		}
	}
	return -1
}

// TestDisplayFieldsAreCleaned puts hostile text in each display field of an
// event and checks every part of every message rendered from it: the
// characters are gone wherever the field shows, and the visible text is
// kept.
func TestDisplayFieldsAreCleaned(t *testing.T) {
	s := embedded(t)
	type part struct {
		ch   notification.Channel
		name string // subject, to_name, text, html, title, ics
	}
	tests := []struct {
		field     string
		eventType string
		sample    string
		path      string // object holding the field
		key       string
		value     string
		shows     []part // where the value must show, cleaned
	}{
		{"member name", "gym.booking.confirmed", "member-en.json", "data.member", "name", "Oliver Bennett",
			[]part{{notification.Email, "to_name"}, {notification.Email, "html"}, {notification.Email, "ics"}}},
		{"instructor name", "gym.booking.confirmed", "member-en.json", "data.class.instructor", "name", "Marco Rossi",
			[]part{{notification.Email, "ics"}}},
		{"class name", "gym.booking.confirmed", "member-en.json", "data.class", "name", "Spin Deluxe",
			[]part{{notification.Email, "subject"}, {notification.Email, "text"}, {notification.Push, "title"}}},
		{"class name in sms", "gym.class.cancelled", "three-attendees.json", "data.class", "name", "Spin Deluxe",
			[]part{{notification.SMS, "text"}, {notification.Email, "subject"}}},
		{"location", "gym.waitlist.promoted", "member-en.json", "data.class", "location", "Studio 2 Shoreditch",
			[]part{{notification.Push, "text"}}},
		{"reason", "gym.class.cancelled", "three-attendees.json", "data", "reason", "Instructor unwell",
			[]part{{notification.SMS, "text"}, {notification.Email, "text"}, {notification.Email, "html"}}},
		{"reason in push", "gym.booking.cancelled", "member-en-with-reason.json", "data", "reason", "Front desk",
			[]part{{notification.Push, "text"}}},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			ev := sample(t, tt.eventType, tt.sample)
			obj := ev
			if tt.path != "" {
				obj = at(ev, tt.path)
			}
			obj[tt.key] = hostile(tt.value)
			ns := plan(t, s, decode(t, ev))
			shown := map[part]bool{}
			for i := range ns {
				m := render(t, s, &ns[i])
				for name, text := range parts(m) {
					if r := forbidden(text); r >= 0 {
						t.Errorf("%s %s holds %U: %q", m.Channel, name, r, text)
					}
					if strings.Contains(text, tt.value) {
						shown[part{m.Channel, name}] = true
					}
				}
			}
			for _, p := range tt.shows {
				if !shown[p] {
					t.Errorf("%s %s never shows %q", p.ch, p.name, tt.value)
				}
			}
		})
	}
}

func parts(m *channels.Message) map[string]string {
	p := map[string]string{"subject": m.Subject, "to_name": m.ToName, "text": m.Text, "html": m.HTML, "title": m.Title}
	for _, a := range m.Attachments {
		// ICS folds long lines; unfold before looking.
		p["ics"] += strings.ReplaceAll(string(a.Data), "\r\n ", "")
	}
	for k, v := range m.Data {
		p["data."+k] = v
	}
	return p
}
