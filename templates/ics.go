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
func icsAttachment(d *view, attendee string, cancel bool) (channels.Attachment, error) {
	classID, ok := d.get("class_id")
	if !ok || classID == "" {
		return channels.Attachment{}, icsMissing("class_id")
	}
	summary, ok := d.get("class_name")
	if !ok || summary == "" {
		return channels.Attachment{}, icsMissing("class_name")
	}
	start, err := icsRequiredTime(d, "class_starts_at")
	if err != nil {
		return channels.Attachment{}, err
	}
	end, err := icsRequiredTime(d, "class_ends_at")
	if err != nil {
		return channels.Attachment{}, err
	}
	stamp := start
	stamped := false
	if v, err := time.Parse(time.RFC3339, d.at("event_time")); err == nil {
		stamp, stamped = v, true
	}

	method, status := "REQUEST", "CONFIRMED"
	contentType := "text/calendar; method=REQUEST; charset=UTF-8"
	if cancel {
		method, status = "CANCEL", "CANCELLED"
		contentType = "text/calendar; method=CANCEL; charset=UTF-8"
	}
	sequence := icsSequence(stamp, stamped, cancel)

	// One buffer holds the whole calendar: each line is appended in
	// place and folded only when it is too long (icsWriter).
	w := icsWriter{b: make([]byte, 0, 1024)}
	w.line("BEGIN:VCALENDAR")
	w.line("VERSION:2.0")
	w.line("PRODID:-//gymhq//herald//EN")
	w.line("CALSCALE:GREGORIAN")
	w.line2("METHOD:", method)
	w.line("BEGIN:VEVENT")
	w.begin("UID:")
	w.b = appendICSUID(w.b, classID, d.at("booking_id"), d.at("recipient_id"))
	w.end()
	w.begin("DTSTAMP:")
	w.b = appendICSTime(w.b, stamp)
	w.end()
	w.begin("DTSTART:")
	w.b = appendICSTime(w.b, start)
	w.end()
	w.begin("DTEND:")
	w.b = appendICSTime(w.b, end)
	w.end()
	w.begin("SEQUENCE:")
	w.b = strconv.AppendInt(w.b, sequence, 10)
	w.end()
	w.line2("STATUS:", status)
	w.begin("SUMMARY:")
	w.b = appendICSText(w.b, summary)
	w.end()
	if v := d.at("class_location"); v != "" {
		w.begin("LOCATION:")
		w.b = appendICSText(w.b, v)
		w.end()
	}
	if v := icsAddress(d.at("class_instructor_email")); v != "" {
		w.begin("ORGANIZER")
		w.b = appendICSCN(w.b, d.at("class_instructor_name"))
		w.b = append(w.b, ":mailto:"...)
		w.b = append(w.b, v...)
		w.end()
	}
	if v := icsAddress(attendee); v != "" {
		w.begin("ATTENDEE")
		w.b = appendICSCN(w.b, d.at("recipient_name"))
		w.b = append(w.b, ";ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=FALSE:mailto:"...)
		w.b = append(w.b, v...)
		w.end()
	}
	w.line("TRANSP:OPAQUE")
	w.line("END:VEVENT")
	w.line("END:VCALENDAR")

	return channels.Attachment{
		Filename:    "invite.ics",
		ContentType: contentType,
		Data:        w.b,
	}, nil
}

// icsMissing is the error of a required key that is absent or empty.
func icsMissing(k string) error { return fmt.Errorf("ics: map has no entry for key %q", k) }

// icsRequiredTime parses required key k of d as an RFC 3339 time.
func icsRequiredTime(d *view, k string) (time.Time, error) {
	v, ok := d.get(k)
	if !ok || v == "" {
		return time.Time{}, icsMissing(k)
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("ics: %s %q is not an RFC 3339 time", k, v)
	}
	return t, nil
}

// appendICSUID appends the UID that identifies one member's place in one
// class, so the invite sent at booking and the cancellation sent later
// name the same calendar entry: 16 bytes of the SHA-256 of
// "<len>:<class id>|<len>:<booking id>|", in hex, at herald.gymhq. Without
// a booking id the recipient stands in for it.
func appendICSUID(dst []byte, classID, bookingID, recipientID string) []byte {
	var buf [128]byte
	in := strconv.AppendInt(buf[:0], int64(len(classID)), 10)
	in = append(in, ':')
	in = append(in, classID...)
	in = append(in, '|')
	if bookingID == "" {
		in = strconv.AppendInt(in, int64(len("recipient:")+len(recipientID)), 10)
		in = append(in, ":recipient:"...)
		in = append(in, recipientID...)
	} else {
		in = strconv.AppendInt(in, int64(len(bookingID)), 10)
		in = append(in, ':')
		in = append(in, bookingID...)
	}
	in = append(in, '|')
	sum := sha256.Sum256(in)
	dst = hex.AppendEncode(dst, sum[:16])
	return append(dst, "@herald.gymhq"...)
}

// appendICSTime appends t as an RFC 5545 UTC DATE-TIME.
func appendICSTime(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, "20060102T150405Z")
}

// icsText escapes a TEXT value (RFC 5545 §3.3.11): appendICSText.
func icsText(s string) string { return string(appendICSText(nil, s)) }

// appendICSText appends s escaped as a TEXT value (RFC 5545 §3.3.11): '\',
// ';' and ',' are backslash-escaped, a line break (CRLF, LF or CR) becomes
// \n, other control characters are dropped (a CR and LF with only those
// between them are one line break), and a byte that is not UTF-8 becomes
// U+FFFD.
func appendICSText(dst []byte, s string) []byte {
	cr := false // the last character kept was a CR
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, w := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && w == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[i:i+w]...)
			}
			i += w
			cr = false
			continue
		}
		i++
		switch {
		case c == '\n':
			if !cr {
				dst = append(dst, `\n`...)
			}
		case c == '\r':
			dst = append(dst, `\n`...)
			cr = true
			continue
		case c < 0x20 || c == 0x7f:
			continue // dropped: it does not end a CR's line break
		case c == '\\' || c == ';' || c == ',':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
		cr = false
	}
	return dst
}

// icsCN renders a CN parameter: appendICSCN.
func icsCN(name string) string { return string(appendICSCN(nil, name)) }

// appendICSCN appends a CN parameter, nothing for an empty name. Parameter
// values cannot hold DQUOTE at all (it becomes an apostrophe), control characters
// become spaces, a byte that is not UTF-8 becomes U+FFFD, and the value is
// quoted when it contains ':', ';' or ','.
func appendICSCN(dst []byte, name string) []byte {
	if name == "" {
		return dst
	}
	quote := strings.ContainsAny(name, ":;,")
	dst = append(dst, ";CN="...)
	if quote {
		dst = append(dst, '"')
	}
	for i := 0; i < len(name); {
		c := name[i]
		if c >= utf8.RuneSelf {
			r, w := utf8.DecodeRuneInString(name[i:])
			if r == utf8.RuneError && w == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, name[i:i+w]...)
			}
			i += w
			continue
		}
		switch {
		case c == '"':
			c = '\''
		case c < 0x20 || c == 0x7f:
			c = ' '
		}
		dst = append(dst, c)
		i++
	}
	if quote {
		dst = append(dst, '"')
	}
	return dst
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

// icsWriter writes content lines with CRLF endings, folded at 75 octets
// (RFC 5545 §3.1) without splitting a UTF-8 sequence. A line is appended
// to b between begin and end, and folded by end when it is too long.
type icsWriter struct {
	b     []byte
	start int // where the line being written starts in b
}

// line writes the content line s.
func (w *icsWriter) line(s string) {
	w.begin(s)
	w.end()
}

// line2 writes the content line name+value.
func (w *icsWriter) line2(name, value string) {
	w.begin(name)
	w.b = append(w.b, value...)
	w.end()
}

// begin starts a content line with s; the caller appends the rest to b.
func (w *icsWriter) begin(s string) {
	w.start = len(w.b)
	w.b = append(w.b, s...)
}

// end ends the line begin started, folding it when it is longer than 75
// octets: each continuation starts with a space, which counts, and a cut
// moves back to the start of a UTF-8 sequence (unless that would leave
// nothing, as in text that is not UTF-8). The folded line is written after
// the unfolded one and then moved into its place.
func (w *icsWriter) end() {
	const limit = 75
	n := len(w.b)
	if n-w.start <= limit {
		w.b = append(w.b, "\r\n"...)
		return
	}
	pos, first := w.start, true
	for {
		room := limit
		if !first {
			room-- // the leading space of a continuation counts
			w.b = append(w.b, ' ')
		}
		if n-pos <= room {
			w.b = append(w.b, w.b[pos:n]...)
			w.b = append(w.b, "\r\n"...)
			break
		}
		cut := room
		for cut > 0 && !utf8.RuneStart(w.b[pos+cut]) {
			cut--
		}
		if cut == 0 { // not UTF-8: any cut is as good as another
			cut = room
		}
		w.b = append(w.b, w.b[pos:pos+cut]...)
		w.b = append(w.b, "\r\n"...)
		pos += cut
		first = false
	}
	w.b = w.b[:w.start+copy(w.b[w.start:], w.b[n:])]
}

// icsSequenceEpoch is where icsSequence counts seconds from.
var icsSequenceEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// icsSequence is the invite's SEQUENCE (RFC 5546 2.1.5: a calendar applies
// an update only when its SEQUENCE is higher, or equal with a later
// DTSTAMP): twice the seconds from 2025 to its event's time, and one more
// for a cancellation. So a booking confirmed again (its class moved) or
// made again after its cancellation, under the same booking id and so the
// same UID, updates the entry a cancellation even seconds before it
// withdrew, and a cancellation in its confirmation's second still
// withdraws it. RFC 5545's INTEGER is 32-bit: this fits until 2059.
// Without an event time it is 0 and, cancelling, 1.
func icsSequence(stamp time.Time, stamped, cancel bool) int64 {
	var seq int64
	if stamped {
		seq = 2 * max(0, int64(stamp.Sub(icsSequenceEpoch)/time.Second))
	}
	if cancel {
		seq++
	}
	return seq
}
