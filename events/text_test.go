package events_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/gymhq/herald/events"
)

func TestCleanText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "Spin 45", "Spin 45"},
		{"letters of every script", "Sofía Núñez — 朝ヨガ — يوغا", "Sofía Núñez — 朝ヨガ — يوغا"},
		{"NUL and BEL", "Spin\x00 45\x07", "Spin 45"},
		{"DEL and C1", "Spin\x7f 45\u0080\u009f", "Spin 45"},
		{"newline, tab, CR become spaces", "Spin\n45\tStudio\r2", "Spin 45 Studio 2"},
		{"line and paragraph separators, NEL", "a\u2028b\u2029c\u0085d", "a b c d"},
		{"CSI colour sequence whole", "\x1b[1;31mSpin\x1b[0m 45", "Spin 45"},
		{"CSI with intermediates", "Spin\x1b[2 q 45", "Spin 45"},
		{"OSC window title ended by BEL", "\x1b]0;pwned\x07Spin 45", "Spin 45"},
		{"OSC ended by ST", "\x1b]8;;http://evil\x1b\\Spin 45", "Spin 45"},
		{"two-character escape", "Spin\x1bc 45", "Spin 45"},
		{"lone ESC at the end", "Spin 45\x1b", "Spin 45"},
		{"C1 CSI", "Spin\u009b31m 45", "Spin 45"},
		{"RLO override (Trojan Source)", "Spin \u202e54 nipS\u202c", "Spin 54 nipS"},
		{"every embedding and override", "\u202a\u202b\u202c\u202d\u202eA", "A"},
		{"isolates", "\u2066A\u2067B\u2068C\u2069", "ABC"},
		{"marks", "A\u200eB\u200fC\u061cD", "ABCD"},
		{"zero-width joiner kept (emoji, Indic scripts)", "👩\u200d💻", "👩\u200d💻"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		if got := events.CleanText(tt.in); got != tt.want {
			t.Errorf("%s: CleanText(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

// Decode cleans every display string of the data, and leaves addresses,
// which are checked per recipient and never edited.
func TestDecodeCleansDisplayText(t *testing.T) {
	ev := edited(t, "class_cancelled.json", func(ev map[string]any) {
		d := obj(ev, "data")
		d["reason"] = "Instructor\x1b[31m unwell\u202e"
		obj(ev, "data.class")["name"] = "Spin\x00 45"
		obj(ev, "data.class")["location"] = "Studio\n2"
		obj(ev, "data.class.instructor")["name"] = "Priya\u2066 Raman"
		a := d["attendees"].([]any)[0].(map[string]any)
		a["name"] = "Oliver\x07 Bennett"
		a["phone"] = "+44\u202e7700900123"
		a["email"] = "oliver\x00@example.com"
		a["push_tokens"] = []any{"tok\x1b[0m"}
		d["extra"] = map[string]any{"notes": []any{"a\x00b"}}
	})
	e, err := events.Decode(ev)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.Class()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := e.People("attendees")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct{ what, got, want string }{
		{"reason", e.Data["reason"].(string), "Instructor unwell"},
		{"class name", c.Name, "Spin 45"},
		{"location", c.Location, "Studio 2"},
		{"instructor name", c.Instructor.Name, "Priya Raman"},
		{"member name", ps[0].Name, "Oliver Bennett"},
		{"nested array", obj(map[string]any{"d": e.Data}, "d.extra")["notes"].([]any)[0].(string), "ab"},
		{"phone, as given", ps[0].Phone, "+44\u202e7700900123"},
		{"email, as given", ps[0].Email, "oliver\x00@example.com"},
		{"push token, as given", ps[0].PushTokens[0], "tok\x1b[0m"},
	} {
		if g.got != g.want {
			t.Errorf("%s = %q, want %q", g.what, g.got, g.want)
		}
	}
}

func FuzzCleanText(f *testing.F) {
	for _, s := range []string{"Spin 45", "\x1b[31mx", "\x1b]0;t\x07", "\u202eA", "\x1b", "\u009b", "a\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // Decode refuses invalid UTF-8 before cleaning
		}
		got := events.CleanText(s)
		if events.CleanText(got) != got {
			t.Fatalf("CleanText is not idempotent on %q: %q", s, got)
		}
		if len(got) > len(s) {
			t.Fatalf("CleanText(%q) = %q grew", s, got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || strings.ContainsRune("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u2028\u2029", r) {
				t.Fatalf("CleanText(%q) = %q keeps %U", s, got, r)
			}
		}
	})
}
