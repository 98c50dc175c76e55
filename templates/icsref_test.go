package templates

// The calendar invite as icsAttachment built it before it wrote into one
// buffer: the reference TestICSMatchesReference and FuzzICS hold the
// faster one to, byte for byte and error for error.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/notification"
)

func icsAttachmentRef(d map[string]string, attendee string, cancel bool) (channels.Attachment, error) {
	need := func(k string) (string, error) {
		v, ok := d[k]
		if !ok || v == "" {
			return "", fmt.Errorf("ics: map has no entry for key %q", k)
		}
		return v, nil
	}
	classID, err := need("class_id")
	if err != nil {
		return channels.Attachment{}, err
	}
	summary, err := need("class_name")
	if err != nil {
		return channels.Attachment{}, err
	}
	var start, end time.Time
	for _, t := range []struct {
		key string
		dst *time.Time
	}{{"class_starts_at", &start}, {"class_ends_at", &end}} {
		v, err := need(t.key)
		if err != nil {
			return channels.Attachment{}, err
		}
		if *t.dst, err = time.Parse(time.RFC3339, v); err != nil {
			return channels.Attachment{}, fmt.Errorf("ics: %s %q is not an RFC 3339 time", t.key, v)
		}
	}
	stamp := start
	sequence := 0
	if v, err := time.Parse(time.RFC3339, d["event_time"]); err == nil {
		stamp = v
		if sec := int(v.Sub(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)).Seconds()); sec > 0 {
			sequence = 2 * sec // seconds since 2025, so a later event's invite is a later revision
		}
	}

	method, status := "REQUEST", "CONFIRMED"
	if cancel {
		method, status = "CANCEL", "CANCELLED"
		sequence++
	}

	var w icsWriterRef
	w.line("BEGIN:VCALENDAR")
	w.line("VERSION:2.0")
	w.line("PRODID:-//gymhq//herald//EN")
	w.line("CALSCALE:GREGORIAN")
	w.line("METHOD:" + method)
	w.line("BEGIN:VEVENT")
	w.line("UID:" + icsUIDRef(classID, d["booking_id"], d["recipient_id"]))
	w.line("DTSTAMP:" + icsTimeRef(stamp))
	w.line("DTSTART:" + icsTimeRef(start))
	w.line("DTEND:" + icsTimeRef(end))
	w.line("SEQUENCE:" + strconv.Itoa(sequence))
	w.line("STATUS:" + status)
	w.line("SUMMARY:" + icsTextRef(summary))
	if v := d["class_location"]; v != "" {
		w.line("LOCATION:" + icsTextRef(v))
	}
	if v := icsAddressRef(d["class_instructor_email"]); v != "" {
		w.line("ORGANIZER" + icsCNRef(d["class_instructor_name"]) + ":mailto:" + v)
	}
	if v := icsAddressRef(attendee); v != "" {
		w.line("ATTENDEE" + icsCNRef(d["recipient_name"]) + ";ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=FALSE:mailto:" + v)
	}
	w.line("TRANSP:OPAQUE")
	w.line("END:VEVENT")
	w.line("END:VCALENDAR")

	return channels.Attachment{
		Filename:    "invite.ics",
		ContentType: "text/calendar; method=" + method + "; charset=UTF-8",
		Data:        []byte(w.b.String()),
	}, nil
}

// icsUIDRef identifies one member's place in one class, so the invite sent at
// booking and the cancellation sent later name the same calendar entry.
// Without a booking id the recipient stands in for it.
func icsUIDRef(classID, bookingID, recipientID string) string {
	if bookingID == "" {
		bookingID = "recipient:" + recipientID
	}
	h := sha256.New()
	for _, p := range []string{classID, bookingID} {
		fmt.Fprintf(h, "%d:%s|", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil)[:16]) + "@herald.gymhq"
}

func icsTimeRef(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// icsTextRef escapes a TEXT value (RFC 5545 §3.3.11).
var icsTextEscaperRef = strings.NewReplacer(`\`, `\\`, ";", `\;`, ",", `\,`, "\r\n", `\n`, "\n", `\n`, "\r", `\n`)

func icsTextRef(s string) string { return icsTextEscaperRef.Replace(stripControlsRef(s)) }

// icsCNRef renders a CN parameter; parameter values cannot hold DQUOTE at all
// and must be quoted when they contain ':', ';' or ','.
func icsCNRef(name string) string {
	name = strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r < 0x20 || r == 0x7f:
			return ' '
		}
		return r
	}, name)
	if name == "" {
		return ""
	}
	if strings.ContainsAny(name, ":;,") {
		return `;CN="` + name + `"`
	}
	return ";CN=" + name
}

// icsAddressRef returns an email address fit for a mailto: URI, or "": the
// instructor's address is not a recipient's and is not checked at planning,
// so a malformed one is left out of the invite rather than failing it.
func icsAddressRef(s string) string {
	if address.Check(notification.Email, s) != nil {
		return ""
	}
	return s
}

// stripControlsRef drops control characters except those icsTextRef escapes.
func stripControlsRef(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\r' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// icsWriterRef writes content lines with CRLF endings, folded at 75 octets
// (RFC 5545 §3.1) without splitting a UTF-8 sequence.
type icsWriterRef struct{ b strings.Builder }

func (w *icsWriterRef) line(s string) {
	const limit = 75
	first := true
	for {
		room := limit
		if !first {
			room-- // the leading space of a continuation counts
		}
		if len(s) <= room {
			if !first {
				w.b.WriteByte(' ')
			}
			w.b.WriteString(s)
			w.b.WriteString("\r\n")
			return
		}
		cut := room
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 { // not UTF-8: any cut is as good as another
			cut = room
		}
		if !first {
			w.b.WriteByte(' ')
		}
		w.b.WriteString(s[:cut])
		w.b.WriteString("\r\n")
		s = s[cut:]
		first = false
	}
}

// sameICS builds the invite both ways from d and fails unless both are
// byte-identical, or fail with the same error.
func sameICS(t *testing.T, what string, d map[string]string, attendee string) {
	t.Helper()
	for _, cancel := range []bool{false, true} {
		got, gerr := icsAttachment(viewOf(d), attendee, cancel)
		want, werr := icsAttachmentRef(d, attendee, cancel)
		switch {
		case (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error():
			t.Fatalf("%s: error %v, reference %v", what, gerr, werr)
		case got.Filename != want.Filename || got.ContentType != want.ContentType || !bytes.Equal(got.Data, want.Data):
			t.Fatalf("%s (cancel %v):\n%q %q\n%q\nreference\n%q %q\n%q", what, cancel,
				got.Filename, got.ContentType, got.Data, want.Filename, want.ContentType, want.Data)
		}
	}
}

// The invite is byte-identical to the reference for every shipped sample,
// with each key removed and with hostile values in each key.
func TestICSMatchesReference(t *testing.T) {
	shippedCases(t, func(what string, pp *parsedPart, l *localized, n *notification.Notification) {
		if n.Channel != notification.Email || !strings.HasSuffix(what, partSubject) {
			return
		}
		sameICS(t, what, renderData(n, l), n.To)
		for _, k := range sortedKeys(n.Data.Map()) {
			d := renderData(n, l)
			delete(d, k)
			sameICS(t, what+" without "+k, d, n.To)
			for _, v := range append(hostileValues, strings.Repeat("a", 70)+"é", "x:y;z,w", "\r\x01\n", "a@b.example", `"Ana" <a@b.example>`) {
				d := renderData(n, l)
				d[k] = v
				sameICS(t, what+" with "+k+"="+v, d, n.To)
				sameICS(t, what+" attendee "+v, d, v)
			}
		}
	})
}

// FuzzICS holds the invite to the reference with arbitrary values.
func FuzzICS(f *testing.F) {
	f.Add("Spin 45", "Emma Clarke", "Studio 2, Shoreditch", "2026-11-23T07:00:00Z", "bk-1")
	f.Add("a;b,c\\d\r\n", "Ana \"x\" <b>", "\r\x01\n\x7f", "not a time", "")
	f.Add(strings.Repeat("é", 80), "\x00\xff", strings.Repeat("💪", 30), "", "\xc3")
	f.Fuzz(func(t *testing.T, class, name, location, starts, booking string) {
		d := map[string]string{
			"class_id": "c-1", "class_name": class, "recipient_name": name, "class_location": location,
			"class_starts_at": starts, "class_ends_at": "2026-11-23T07:45:00Z", "booking_id": booking,
			"recipient_id": name, "class_instructor_name": location, "class_instructor_email": "coach@gym.example",
			"event_time": starts,
		}
		sameICS(t, "fuzz", d, "member@example.com")
	})
}
