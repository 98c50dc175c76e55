package templates

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/notification"
)

// icsAttachment builds the RFC 5545 calendar invite for a class (RFC 5546
// iTIP: METHOD:REQUEST to add it, METHOD:CANCEL with the same UID and a
// higher SEQUENCE to withdraw it). It reads class_id, class_name,
// class_starts_at and class_ends_at (required), and booking_id,
// class_location, class_instructor_name, class_instructor_email,
// recipient_name and event_time when present; attendee is the recipient's
// email address.
//
// Output is deterministic for a notification, so re-rendering a retry yields
// the same bytes.
func icsAttachment(d map[string]string, attendee string, cancel bool) (channels.Attachment, error) {
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
	if v, err := time.Parse(time.RFC3339, d["event_time"]); err == nil {
		stamp = v
	}

	method, status, sequence := "REQUEST", "CONFIRMED", 0
	if cancel {
		method, status, sequence = "CANCEL", "CANCELLED", 1
	}

	var w icsWriter
	w.line("BEGIN:VCALENDAR")
	w.line("VERSION:2.0")
	w.line("PRODID:-//gymhq//herald//EN")
	w.line("CALSCALE:GREGORIAN")
	w.line("METHOD:" + method)
	w.line("BEGIN:VEVENT")
	w.line("UID:" + icsUID(classID, d["booking_id"], d["recipient_id"]))
	w.line("DTSTAMP:" + icsTime(stamp))
	w.line("DTSTART:" + icsTime(start))
	w.line("DTEND:" + icsTime(end))
	w.line("SEQUENCE:" + strconv.Itoa(sequence))
	w.line("STATUS:" + status)
	w.line("SUMMARY:" + icsText(summary))
	if v := d["class_location"]; v != "" {
		w.line("LOCATION:" + icsText(v))
	}
	if v := icsAddress(d["class_instructor_email"]); v != "" {
		w.line("ORGANIZER" + icsCN(d["class_instructor_name"]) + ":mailto:" + v)
	}
	if v := icsAddress(attendee); v != "" {
		w.line("ATTENDEE" + icsCN(d["recipient_name"]) + ";ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=FALSE:mailto:" + v)
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

// icsUID identifies one member's place in one class, so the invite sent at
// booking and the cancellation sent later name the same calendar entry.
// Without a booking id the recipient stands in for it.
func icsUID(classID, bookingID, recipientID string) string {
	if bookingID == "" {
		bookingID = "recipient:" + recipientID
	}
	h := sha256.New()
	for _, p := range []string{classID, bookingID} {
		fmt.Fprintf(h, "%d:%s|", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil)[:16]) + "@herald.gymhq"
}

func icsTime(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// icsText escapes a TEXT value (RFC 5545 §3.3.11).
var icsTextEscaper = strings.NewReplacer(`\`, `\\`, ";", `\;`, ",", `\,`, "\r\n", `\n`, "\n", `\n`, "\r", `\n`)

func icsText(s string) string { return icsTextEscaper.Replace(stripControls(s)) }

// icsCN renders a CN parameter; parameter values cannot hold DQUOTE at all
// and must be quoted when they contain ':', ';' or ','.
func icsCN(name string) string {
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

// icsAddress returns an email address fit for a mailto: URI, or "": the
// instructor's address is not a recipient's and is not checked at planning,
// so a malformed one is left out of the invite rather than failing it.
func icsAddress(s string) string {
	if address.Check(notification.Email, s) != nil {
		return ""
	}
	return s
}

// stripControls drops control characters except those icsText escapes.
func stripControls(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\r' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// icsWriter writes content lines with CRLF endings, folded at 75 octets
// (RFC 5545 §3.1) without splitting a UTF-8 sequence.
type icsWriter struct{ b strings.Builder }

func (w *icsWriter) line(s string) {
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
