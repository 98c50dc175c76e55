package events_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
)

// FuzzDecode holds Decode to its contract on any input: it never panics,
// every error is poison, and an event it accepts is usable, that is, the
// recipients and class that routing will ask for are there and valid.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"specversion":"1.0","id":"e","source":"s","type":"x","data":{}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"e","source":"s","type":"gym.class.reminder","data":{"member":{"id":"m","phone":"+447700900123"}}}`))

	f.Fuzz(func(t *testing.T, in []byte) {
		ev, err := events.Decode(in)
		if err != nil {
			if ev != nil {
				t.Errorf("Decode returned an event with error %v", err)
			}
			if c := failure.ClassOf(err); c != failure.Poison {
				t.Fatalf("error %v is %v, want poison", err, c)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" || ev.Source == "" || ev.SpecVersion != "1.0" || ev.Data == nil {
			t.Fatalf("accepted an incomplete event: %+v", ev)
		}
		var recipients string
		switch ev.Type {
		case events.BookingConfirmed, events.BookingCancelled, events.WaitlistPromoted, events.ClassReminder:
			recipients = "member"
		case events.ClassCancelled:
			recipients = "attendees"
		default:
			return
		}
		if ps, err := ev.People(recipients); err != nil || len(ps) == 0 {
			t.Fatalf("People(%q) of an accepted %s = %v, %v", recipients, ev.Type, ps, err)
		}
		c, err := ev.Class()
		if err != nil {
			t.Fatalf("Class of an accepted %s: %v", ev.Type, err)
		}
		if (c.Instructor != nil) != ev.Has("class.instructor") {
			t.Fatalf("Class().Instructor = %v but Has(class.instructor) = %v", c.Instructor, ev.Has("class.instructor"))
		}
	})
}
