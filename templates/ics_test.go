package templates_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

// invite plans and renders ev's email and returns its calendar attachment.
func invite(t *testing.T, s *templates.Set, ev map[string]any) channels.Attachment {
	t.Helper()
	n := only(plan(t, s, decode(t, ev)), notification.Email)[0]
	m := render(t, s, &n)
	if len(m.Attachments) != 1 {
		t.Fatalf("%d attachments, want 1", len(m.Attachments))
	}
	return m.Attachments[0]
}

// unfold checks RFC 5545 §3.1 framing (CRLF only, lines at most 75
// octets, folds not splitting UTF-8) and returns the unfolded content lines.
func unfold(t *testing.T, b []byte) []string {
	t.Helper()
	s := string(b)
	if !strings.HasSuffix(s, "\r\n") {
		t.Fatal("calendar does not end with CRLF")
	}
	if strings.Count(s, "\n") != strings.Count(s, "\r\n") || strings.Count(s, "\r") != strings.Count(s, "\r\n") {
		t.Fatal("calendar has a bare LF or CR")
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n") {
		if len(l) > 75 {
			t.Errorf("line of %d octets: %q", len(l), l)
		}
		if !utf8.ValidString(l) {
			t.Errorf("fold split a UTF-8 sequence: %q", l)
		}
		if strings.HasPrefix(l, " ") {
			lines[len(lines)-1] += l[1:]
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

func property(lines []string, name string) string {
	for _, l := range lines {
		if k, v, ok := strings.Cut(l, ":"); ok && (k == name || strings.HasPrefix(k, name+";")) {
			return v
		}
	}
	return ""
}

func TestICS(t *testing.T) {
	s := embedded(t)

	confirmed := sample(t, events.BookingConfirmed, "member-en.json")
	class := at(confirmed, "data.class")
	class["name"] = "Señora Lucía's extra-long Sunrise Power Vinyasa Flow; bring mat, towel, and water \\ no shoes"
	class["location"] = "Studio 2, Shoreditch; enter by the side door"
	at(confirmed, "data.member")["name"] = `Emma "Em" Clarke`
	a := invite(t, s, confirmed)
	if a.Filename != "invite.ics" || a.ContentType != "text/calendar; method=REQUEST; charset=UTF-8" {
		t.Errorf("attachment %s %q", a.Filename, a.ContentType)
	}
	req := unfold(t, a.Data)
	for name, want := range map[string]string{
		"METHOD":    "REQUEST",
		"VERSION":   "2.0",
		"DTSTART":   "20261123T070000Z",
		"DTEND":     "20261123T074500Z",
		"DTSTAMP":   "20261120T180400Z",
		"SEQUENCE":  "119016480", // twice the seconds from 2025 to the event's time, 2026-11-20T18:04Z
		"STATUS":    "CONFIRMED",
		"SUMMARY":   `Señora Lucía's extra-long Sunrise Power Vinyasa Flow\; bring mat\, towel\, and water \\ no shoes`,
		"LOCATION":  `Studio 2\, Shoreditch\; enter by the side door`,
		"ORGANIZER": "mailto:marco.rossi@example.com",
		"ATTENDEE":  "mailto:emma.clarke@example.com",
	} {
		if got := property(req, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(string(a.Data), "\r\n ") {
		t.Error("long SUMMARY was not folded")
	}
	for _, l := range req {
		if strings.HasPrefix(l, "ATTENDEE") && !strings.HasPrefix(l, "ATTENDEE;CN=Emma 'Em' Clarke;") {
			t.Errorf("ATTENDEE CN not sanitised: %q", l)
		}
	}
	if req[0] != "BEGIN:VCALENDAR" || req[len(req)-1] != "END:VCALENDAR" {
		t.Errorf("calendar framed by %q … %q", req[0], req[len(req)-1])
	}

	// The same booking's cancellation withdraws the same calendar entry.
	cancelled := sample(t, events.BookingCancelled, "member-en-with-reason.json")
	c := invite(t, s, cancelled)
	if c.ContentType != "text/calendar; method=CANCEL; charset=UTF-8" {
		t.Errorf("cancellation content type %q", c.ContentType)
	}
	cancel := unfold(t, c.Data)
	if got, want := property(cancel, "UID"), property(req, "UID"); got != want || want == "" {
		t.Errorf("cancellation UID %q, invite UID %q", got, want)
	}
	if property(cancel, "METHOD") != "CANCEL" || property(cancel, "STATUS") != "CANCELLED" || property(cancel, "SEQUENCE") != "119125441" { // 2026-11-21T09:12Z's, and one for a cancellation
		t.Errorf("cancellation METHOD %q STATUS %q SEQUENCE %q", property(cancel, "METHOD"), property(cancel, "STATUS"), property(cancel, "SEQUENCE"))
	}

	// UID is stable across renders and differs between bookings.
	again := unfold(t, invite(t, s, sample(t, events.BookingConfirmed, "member-en.json")).Data)
	if property(again, "UID") != property(req, "UID") {
		t.Error("UID changed between renders of the same booking")
	}
	other := unfold(t, invite(t, s, sample(t, events.BookingConfirmed, "member-es.json")).Data)
	if property(other, "UID") == property(req, "UID") {
		t.Error("two bookings share a UID")
	}
	// DTSTART is UTC whatever the class's zone (Madrid, 07:00 local).
	if got := property(other, "DTSTART"); got != "20261123T060000Z" {
		t.Errorf("Madrid DTSTART %q, want 20261123T060000Z", got)
	}
}

func TestICSWithoutInstructorHasNoOrganizer(t *testing.T) {
	s := embedded(t)
	ev := sample(t, events.BookingConfirmed, "member-en.json")
	delete(at(ev, "data.class"), "instructor")
	lines := unfold(t, invite(t, s, ev).Data)
	if property(lines, "ORGANIZER") != "" {
		t.Error("ORGANIZER without a known email")
	}
}

// The instructor is no recipient of the confirmation, so a malformed email
// of theirs fails nothing: it is left out of the invite, which still goes
// to the member.
func TestICSLeavesOutAMalformedOrganizer(t *testing.T) {
	s := embedded(t)
	for _, bad := range []string{"marco at example.com", "Marco <marco@example.com>", "marco@example.com\r\nATTENDEE:mailto:eve@example.com"} {
		ev := sample(t, events.BookingConfirmed, "member-en.json")
		at(ev, "data.class.instructor")["email"] = bad
		lines := unfold(t, invite(t, s, ev).Data)
		if got := property(lines, "ORGANIZER"); got != "" {
			t.Errorf("instructor email %q: ORGANIZER %q, want none", bad, got)
		}
	}
}

// A calendar applies an invite only when it is a later revision of the
// entry (RFC 5546 2.1.5: a higher SEQUENCE, or an equal one with a later
// DTSTAMP). Every invite of one booking has the same UID, so its SEQUENCE
// follows its event's time: a booking confirmed again with its class's new
// time, or made again after its cancellation, updates the entry; a
// cancellation withdraws it, even in the confirmation's minute. Before,
// every REQUEST was SEQUENCE 0 and every CANCEL 1, so a calendar kept a
// re-booked class cancelled.
func TestICSSequenceOrdersRevisions(t *testing.T) {
	s := embedded(t)
	seq := func(typ, name, time string) int {
		t.Helper()
		ev := sample(t, typ, name)
		ev["data"].(map[string]any)["booking_id"] = "bkg_same"
		if time == "" {
			delete(ev, "time")
		} else {
			ev["time"] = time
		}
		n, err := strconv.Atoi(property(unfold(t, invite(t, s, ev).Data), "SEQUENCE"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The outside tester's: a cancellation and a re-booking in one minute
	// (with minutes, the re-booking came out older than the cancellation).
	booked := seq(events.BookingConfirmed, "member-en.json", "2026-11-21T09:00:10Z")
	cancelled := seq(events.BookingCancelled, "member-en-with-reason.json", "2026-11-21T09:00:10Z")
	rebooked := seq(events.BookingConfirmed, "member-en.json", "2026-11-21T09:00:50Z")
	moved := seq(events.BookingConfirmed, "member-en.json", "2026-11-21T09:00:51Z")
	if !(booked < cancelled && cancelled < rebooked && rebooked < moved) {
		t.Errorf("SEQUENCE booked %d, cancelled in its second %d, re-booked 40 s later %d, moved a second later %d: want each higher", booked, cancelled, rebooked, moved)
	}
	if a, b := seq(events.BookingConfirmed, "member-en.json", ""), seq(events.BookingCancelled, "member-en-with-reason.json", ""); a != 0 || b != 1 {
		t.Errorf("without event times: SEQUENCE %d and %d, want 0 and 1", a, b)
	}
}
