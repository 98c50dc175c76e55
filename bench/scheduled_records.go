package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
)

// reminders makes the scheduled scenario's input: distinct booking
// reminders, each exactly the schedule record the dispatcher writes for a
// gym.booking.confirmed event (the push reminder two hours before the
// class, with its two cancel keys, booking (its replace key too) and
// class), with its own event,
// booking, class and due time.
//
// Encoding a million of them with encoding/json would take the bench
// process about 25 s of CPU, the length of the whole measurement, so each
// base reminder is encoded once with placeholders in the fields that vary
// and copied with the values filled in; the test checks that the copy is
// byte for byte what schedule.Encode writes.
type reminders struct {
	bases []reminderBase
	// at is the records' creation time (Record.At, Notification.CreatedAt).
	at time.Time
}

// reminderBase is one planned reminder and its encodings with
// placeholders.
type reminderBase struct {
	n notification.Notification // as planned, for reference
	// record and note are the schedule record and the notification alone
	// (the naive baseline stores that), split at the placeholders.
	record, note []segment
	// bookingKey is its booking cancel key up to the booking id.
	bookingKey string
}

// segment is a literal run of an encoding and the placeholder after it.
type segment struct {
	lit []byte
	tok int
}

// Placeholders: plain ASCII, so JSON writes them as they are.
const (
	tokNone = iota
	tokID
	tokEvent
	tokBooking
	tokClass
	tokDue
	tokEntry
	tokCount
)

// dueSentinel is the placeholder due time; nothing else in a record is
// due in 2099.
var dueSentinel = time.Date(2099, 1, 2, 3, 4, 5, 678901234, time.UTC)

var placeholders = [tokCount]string{
	tokID: "~~ID~~", tokEvent: "~~EVT~~", tokBooking: "~~BKG~~", tokClass: "~~CLS~~",
	tokDue: dueSentinel.Format(time.RFC3339Nano),
	// The record's id names the wait: the notification id, due time and
	// attempt (schedule.EntryID).
	tokEntry: schedule.EntryID("~~ID~~", dueSentinel, 0),
}

// remindersPerClass is how many bookings share a class (and its cancel
// key): a class cancellation withdraws that many reminders.
const remindersPerClass = 20

// newReminders plans reminders from simulated bookings until it has bases
// distinct bases (each a different member).
func newReminders(tpl *templates.Set, bases int, at time.Time) (*reminders, error) {
	g := sim.New(sim.Options{Seed: 83, Members: 2000, Prefix: "rem"})
	p := &dispatcher.Planner{Templates: tpl, NoQuietHours: true, Now: func() time.Time { return at }}
	r := &reminders{at: at.UTC()}
	seen := map[string]bool{}
	for tries := 0; len(r.bases) < bases; tries++ {
		if tries > 50*bases {
			return nil, fmt.Errorf("scheduled: %d push reminders planned from %d bookings, want %d", len(r.bases), tries, bases)
		}
		ep, err := p.PlanEvent(context.Background(), g.Make("gym.booking.confirmed").Value)
		if err != nil {
			return nil, err
		}
		for _, n := range ep.Notifications {
			if n.Deferred != notification.DeferSchedule || n.Channel != notification.Push || seen[n.RecipientID] {
				continue
			}
			seen[n.RecipientID] = true
			b, err := newReminderBase(n, r.at)
			if err != nil {
				return nil, err
			}
			r.bases = append(r.bases, b)
		}
	}
	return r, nil
}

func newReminderBase(n notification.Notification, at time.Time) (reminderBase, error) {
	b := reminderBase{n: n}
	t := n
	for k, tok := range map[string]int{"event_id": tokEvent, "booking_id": tokBooking, "class_id": tokClass} {
		if _, ok := t.Data.Lookup(k); !ok {
			return b, fmt.Errorf("scheduled: planned reminder has no data.%s", k)
		}
		t.Data = t.Data.With(notification.Field{Key: k, Value: placeholders[tok]})
	}
	t.ID, t.EventID, t.CreatedAt, t.DueAt = placeholders[tokID], placeholders[tokEvent], at, dueSentinel
	t.CancelKeys = nil
	for _, k := range n.CancelKeys {
		prefix, _, _ := strings.Cut(k, "=")
		switch {
		case strings.HasSuffix(prefix, "|booking_id"):
			b.bookingKey = prefix + "="
			t.CancelKeys = append(t.CancelKeys, b.bookingKey+placeholders[tokBooking])
		case strings.HasSuffix(prefix, "|class.id"):
			t.CancelKeys = append(t.CancelKeys, prefix+"="+placeholders[tokClass])
		default:
			return b, fmt.Errorf("scheduled: unexpected cancel key %q", k)
		}
	}
	if len(t.CancelKeys) != 2 || b.bookingKey == "" {
		return b, fmt.Errorf("scheduled: planned reminder has cancel keys %q, want a booking's (its replace key too) and a class's", n.CancelKeys)
	}
	nb, err := notification.EncodeJSON(&t)
	if err != nil {
		return b, err
	}
	rec, err := schedule.Schedule(&t, dueSentinel, topics.Channel(t.Channel), at)
	if err != nil {
		return b, err
	}
	rb, err := schedule.Encode(rec)
	if err != nil {
		return b, err
	}
	b.record, b.note = split(rb), split(nb)
	return b, nil
}

// split cuts an encoding at its placeholders (the longest of those that
// start at the same place: the entry id starts with the notification's).
func split(b []byte) []segment {
	var out []segment
	for len(b) > 0 {
		at, tok := -1, tokNone
		for k := tokID; k < tokCount; k++ {
			i := bytes.Index(b, []byte(placeholders[k]))
			if i >= 0 && (at < 0 || i < at || i == at && len(placeholders[k]) > len(placeholders[tok])) {
				at, tok = i, k
			}
		}
		if at < 0 {
			out = append(out, segment{lit: b})
			break
		}
		out = append(out, segment{lit: b[:at], tok: tok})
		b = b[at+len(placeholders[tok]):]
	}
	return out
}

// reminder is the i-th reminder of a set ("rem", "due", …: sets never
// share an event, booking or class).
type reminder struct {
	base *reminderBase
	// id is the notification's; entry the wait's, the record's id and key
	// and the index's id (schedule.EntryID).
	id, entry, event, booking, class string
	due                              time.Time
}

func (r *reminders) reminder(set string, i int, due time.Time) reminder {
	b := &r.bases[i%len(r.bases)]
	m := reminder{base: b, due: due.UTC(),
		event:   "evt_" + set + "_" + pad(i, 9),
		booking: "bkg_" + set + "_" + pad(i, 9),
		class:   "cls_" + set + "_" + pad(i/remindersPerClass, 7),
	}
	m.id = notification.NewID(m.event, b.n.Template, b.n.Channel, b.n.RecipientID, b.n.To)
	m.entry = schedule.EntryID(m.id, m.due, b.n.Attempt)
	return m
}

// bookingKey is the cancel key a cancellation of the reminder's booking
// carries (gym.booking.cancelled).
func (m *reminder) bookingKey() string { return m.base.bookingKey + m.booking }

// fill appends segs with m's values to buf.
func (m *reminder) fill(buf []byte, segs []segment) []byte {
	vals := [tokCount]string{tokID: m.id, tokEvent: m.event, tokBooking: m.booking, tokClass: m.class,
		tokDue: m.due.Format(time.RFC3339Nano), tokEntry: m.entry}
	for _, s := range segs {
		buf = append(buf, s.lit...)
		if s.tok != tokNone {
			buf = append(buf, vals[s.tok]...)
		}
	}
	return buf
}

// record is m's schedule record, as schedule.Message makes it.
func (m *reminder) record() kafka.Message {
	return kafka.Message{Topic: topics.Schedule, Key: []byte(m.entry), Value: m.fill(nil, m.base.record)}
}

// notification is m's encoded notification: what fires.
func (m *reminder) notification() []byte { return m.fill(nil, m.base.note) }

// reference is m's schedule record built and encoded the slow way, as the
// dispatcher does: for the test that the copies are exact.
func (r *reminders) reference(m reminder) ([]byte, error) {
	n := m.base.n
	n.Data = n.Data.With(notification.Field{Key: "event_id", Value: m.event}, notification.Field{Key: "booking_id", Value: m.booking},
		notification.Field{Key: "class_id", Value: m.class})
	n.ID, n.EventID, n.CreatedAt, n.DueAt = m.id, m.event, r.at, m.due
	n.CancelKeys = nil
	for _, k := range m.base.n.CancelKeys {
		prefix, _, _ := strings.Cut(k, "=")
		v := m.class
		if strings.HasSuffix(prefix, "|booking_id") {
			v = m.booking
		}
		tmpl, match, _ := strings.Cut(prefix, "|")
		n.CancelKeys = append(n.CancelKeys, templates.CancelKey(tmpl, match, v))
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	rec, err := schedule.Schedule(&n, m.due, topics.Channel(n.Channel), r.at)
	if err != nil {
		return nil, err
	}
	return schedule.Encode(rec)
}

// pad is i in decimal, zero-padded to width.
func pad(i, width int) string {
	s := strconv.Itoa(i)
	if len(s) >= width {
		return s
	}
	return strings.Repeat("0", width-len(s)) + s
}
