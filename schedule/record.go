// Package schedule holds notifications until they are due — a reminder two
// hours before a class, one deferred out of quiet hours or by a frequency
// cap, a retry waiting for its next attempt — and withdraws the ones an
// event cancels, with the pipeline's effectively-once guarantees.
//
// The schedule topic (herald.schedule.v1) is the source of truth: every
// schedule, cancellation and firing is a record on it. The scheduler
// (group herald-scheduler) applies them to an Index in Redis, from which
// any scheduler process fires what is due. The Index is rebuilt from the
// topic when Redis loses it, and its operations commute, so the rebuild
// and the live consumer may run side by side. docs/scheduling.md has the
// design and its limits.
package schedule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/jsonr"
	"github.com/gymhq/herald/internal/jsonw"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

// Record kinds.
const (
	// KindSchedule holds Notification until Due, then publishes it to
	// Topic with Key.
	KindSchedule = "schedule"
	// KindCancel withdraws every pending schedule under one of Keys.
	KindCancel = "cancel"
	// KindDone marks ID fired, so a rebuild does not fire it again.
	KindDone = "done"
)

// Version is the record format; Decode refuses others.
const Version = 1

// Record is one record of the schedule topic.
type Record struct {
	V    int    `json:"v"`
	Kind string `json:"kind"`
	// ID names one wait (schedule, done): EntryID, the notification id
	// with the due time and attempt, so the same notification can wait
	// again (a retry after a retry) without being taken for a wait that
	// has fired, while the same wait published twice is one.
	ID string `json:"id,omitempty"`
	// Due is when a schedule fires. On a cancel record it is the
	// cancelling event's time (absent when the event had none): the
	// record withdraws only what events at or before it scheduled
	// (Cancellation). The field is reused rather than a new one added so
	// that a scheduler of an earlier release, which refuses unknown
	// fields, still reads the record during a rolling deploy (and, not
	// knowing the time, withdraws everything under the keys, as it did).
	Due time.Time `json:"due,omitzero"`
	// Topic and Key are where a schedule's notification is published when
	// due: its channel topic (scheduled, deferred) or retry topic.
	Topic string `json:"topic,omitempty"`
	Key   string `json:"key,omitempty"`
	// Keys are a schedule's cancel keys, or the keys a cancel withdraws.
	Keys []string `json:"keys,omitempty"`
	// Notification is the encoded notification (schedule), in its JSON
	// form (notification.EncodeJSON): the record is JSON, and a JSON value
	// cannot hold the binary form but in base64, a third larger than
	// MaxRecordSize allows. What fires is these bytes, which the workers'
	// notification.Decode reads as it reads the binary form.
	Notification json.RawMessage `json:"notification,omitempty"`
	// EventID is the event that scheduled or cancelled.
	EventID string `json:"event_id,omitempty"`
	// At is when the record was written.
	At time.Time `json:"at,omitzero"`

	// compacted is the Notification bytes Schedule wrote: EncodeJSON's,
	// compact and valid JSON, which Encode writes as they are while
	// Notification still holds them. encoding/json compacted (and so
	// validated) the embedded notification again for every record, most
	// of the 2.4% of the pipeline scenario's CPU that encoding a schedule
	// record took. Other bytes are compacted as encoding/json did.
	compacted []byte
}

// MaxRecordSize bounds a record: a notification and its envelope.
const MaxRecordSize = notification.MaxEncodedSize + 16<<10

// maxKeys bounds a record's cancel keys: a notification's bound.
const maxKeys = notification.MaxCancelKeys

// Encode serialises r; the error is permanent (too large, invalid).
func Encode(r *Record) ([]byte, error) {
	r.V = Version
	if err := r.validate(); err != nil {
		return nil, failure.Perm(failure.ReasonInvalid, err)
	}
	out, err := r.appendJSON(make([]byte, 0, r.sizeHint()))
	if err != nil {
		return nil, failure.Perm(failure.ReasonInvalid, err)
	}
	if len(out) > MaxRecordSize {
		return nil, failure.Errorf(failure.Permanent, failure.ReasonTooLarge, "schedule record of %s is %d bytes, limit %d", r.ID, len(out), MaxRecordSize)
	}
	return out, nil
}

// sizeHint is room for r's JSON when no string needs escaping: the field
// names, two times and punctuation fit in 192 bytes. A record with cancel
// keys outgrew the 256 bytes over the notification that Encode used to
// allow, and appending the notification copied the record once more.
func (r *Record) sizeHint() int {
	n := 192 + len(r.Kind) + len(r.ID) + len(r.Topic) + len(r.Key) + len(r.Notification) + len(r.EventID)
	for _, k := range r.Keys {
		n += len(k) + 3 // quotes and comma
	}
	return n
}

// appendJSON appends r as encoding/json with HTML escaping off writes the
// struct (FuzzEncodeAsEncodingJSON holds it to that), by hand: field order
// and names of the tags, omitempty and omitzero as tagged, Notification
// compacted unless it is what Schedule wrote.
func (r *Record) appendJSON(b []byte) ([]byte, error) { return r.appendJSONWith(b, nil) }

// appendJSONWith is appendJSON, with the notification's value written by
// notif when it is not nil (r.Notification is then not read).
func (r *Record) appendJSONWith(b []byte, notif func([]byte) ([]byte, error)) ([]byte, error) {
	var err error
	tm := func(name string, t time.Time) {
		if err == nil && !t.IsZero() {
			b = append(b, name...)
			b, err = jsonw.Time(b, t)
		}
	}
	str := func(name, v string) {
		if v != "" {
			b = append(b, name...)
			b = jsonw.String(b, v)
		}
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(r.V), 10)
	b = append(b, `,"kind":`...)
	b = jsonw.String(b, r.Kind)
	str(`,"id":`, r.ID)
	tm(`,"due":`, r.Due)
	str(`,"topic":`, r.Topic)
	str(`,"key":`, r.Key)
	if len(r.Keys) > 0 {
		b = append(b, `,"keys":`...)
		b = jsonw.Strings(b, r.Keys)
	}
	if notif != nil {
		b = append(b, `,"notification":`...)
		var nerr error
		if b, nerr = notif(b); nerr != nil {
			return nil, nerr
		}
	} else if len(r.Notification) > 0 {
		b = append(b, `,"notification":`...)
		if len(r.compacted) == len(r.Notification) && unsafe.SliceData(r.compacted) == unsafe.SliceData(r.Notification) {
			b = append(b, r.Notification...)
		} else {
			buf := bytes.NewBuffer(b)
			if cerr := json.Compact(buf, r.Notification); cerr != nil {
				return nil, fmt.Errorf("json: error calling MarshalJSON for type json.RawMessage: %w", cerr)
			}
			b = buf.Bytes()
		}
	}
	str(`,"event_id":`, r.EventID)
	tm(`,"at":`, r.At)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// Decode parses and validates a schedule record; errors are poison.
func Decode(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, failure.Errorf(failure.Poison, failure.ReasonDecode, "schedule record is %d bytes, limit %d", len(b), MaxRecordSize)
	}
	if !utf8.Valid(b) {
		return nil, failure.Errorf(failure.Poison, failure.ReasonDecode, "schedule record is not valid UTF-8")
	}
	r, ok := read(b)
	if !ok {
		var err error
		if r, err = unmarshal(b); err != nil {
			return nil, err
		}
	}
	if err := r.validate(); err != nil {
		return nil, failure.Poisoned(failure.ReasonInvalid, fmt.Errorf("schedule record: %w", err))
	}
	return r, nil
}

// unmarshal reads a record by encoding/json: any layout of it, and the
// errors of what is not one.
func unmarshal(b []byte) (*Record, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return nil, failure.Poisoned(failure.ReasonDecode, fmt.Errorf("schedule record: %w", err))
	}
	// Not dec.More, which is false before a '}' or ']' (the outside
	// review: a record followed by "}garbage" decoded).
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, failure.Errorf(failure.Poison, failure.ReasonDecode, "schedule record: trailing data after JSON object")
	}
	return &r, nil
}

// read reads a record as appendJSON writes it (its fields in its order,
// no whitespace, the notification an object), without reflection: the
// scheduler decodes every record it consumes, and through encoding/json's
// Decoder that was 36% of its CPU in the scheduled scenario (issue 14).
// ok is false for any other layout, which unmarshal then decodes;
// FuzzRead holds the two to the same results. The record's strings and
// its Notification share one copy of b.
func read(b []byte) (_ *Record, ok bool) {
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	buf := bytes.Clone(b)
	jr := jsonr.New(unsafe.String(unsafe.SliceData(buf), len(buf)))
	var r Record
	jr.Expect(`{"v":`)
	r.V = jr.Int()
	jr.Expect(`,"kind":`)
	r.Kind = jr.String()
	if jr.Lit(`,"id":`) {
		r.ID = jr.String()
	}
	if jr.Lit(`,"due":`) {
		r.Due = jr.Time()
	}
	if jr.Lit(`,"topic":`) {
		r.Topic = jr.String()
	}
	if jr.Lit(`,"key":`) {
		r.Key = jr.String()
	}
	if jr.Lit(`,"keys":`) {
		r.Keys = jr.Strings()
	}
	if jr.Lit(`,"notification":`) {
		start := jr.Offset()
		// An object only: encoding/json hands null, a string or a number
		// to the RawMessage as they are, which is not worth copying here.
		if start >= len(buf) || buf[start] != '{' {
			return nil, false
		}
		jr.Skip()
		end := jr.Offset()
		r.Notification = buf[start:end:end]
	}
	if jr.Lit(`,"event_id":`) {
		r.EventID = jr.String()
	}
	if jr.Lit(`,"at":`) {
		r.At = jr.Time()
	}
	jr.Expect("}")
	if !jr.Done() {
		return nil, false
	}
	return &r, true
}

func (r *Record) validate() error {
	if r.V != Version {
		return fmt.Errorf("version %d, want %d", r.V, Version)
	}
	if len(r.Keys) > maxKeys {
		return fmt.Errorf("%d cancel keys, limit %d", len(r.Keys), maxKeys)
	}
	for _, k := range r.Keys {
		if k == "" || len(k) > 1024 || strings.ContainsAny(k, "\n\x00") {
			return fmt.Errorf("cancel key %q is empty, longer than 1 KiB or holds a newline", k)
		}
	}
	switch r.Kind {
	case KindSchedule:
		switch {
		case r.ID == "" || r.Due.IsZero() || r.Topic == "" || len(r.Notification) == 0:
			return fmt.Errorf("schedule record needs id, due, topic and notification")
		case !strings.HasPrefix(r.Topic, "herald."):
			return fmt.Errorf("schedule record's topic %q is not herald's", r.Topic)
		}
	case KindCancel:
		if len(r.Keys) == 0 {
			return fmt.Errorf("cancel record has no keys")
		}
	case KindDone:
		if r.ID == "" {
			return fmt.Errorf("done record has no id")
		}
	default:
		return fmt.Errorf("kind %q is not schedule, cancel or done", r.Kind)
	}
	return nil
}

// Schedule returns the schedule record that holds n until due and then
// publishes it to topic, keyed by its recipient.
func Schedule(n *notification.Notification, due time.Time, topic string, now time.Time) (*Record, error) {
	b, err := notification.EncodeJSON(n)
	if err != nil {
		return nil, err
	}
	return &Record{Kind: KindSchedule, ID: EntryID(n.ID, due, n.Attempt), Due: due.UTC(), Topic: topic, Key: n.RecipientID,
		Keys: n.CancelKeys, Notification: b, EventID: n.EventID, At: now.UTC(), compacted: b}, nil
}

// ScheduleMessage is Message(Schedule(n, due, topic, now)), byte for byte
// and error for error, with the notification's JSON written straight into
// the record's: the dispatcher's path for every notification the scheduler
// holds, where the notification's own buffer, copied into the record's, was
// a third of the bytes a reminder cost to plan and publish. A record it
// cannot write goes the long way, for that way's error.
func ScheduleMessage(n *notification.Notification, due time.Time, topic string, now time.Time) (queue.Message, error) {
	r := Record{V: Version, Kind: KindSchedule, ID: EntryID(n.ID, due, n.Attempt), Due: due.UTC(), Topic: topic, Key: n.RecipientID,
		Keys: n.CancelKeys, EventID: n.EventID, At: now.UTC()}
	var from, to int
	out, err := r.appendJSONWith(make([]byte, 0, r.sizeHint()+notification.JSONSizeHint(n)), func(b []byte) ([]byte, error) {
		from = len(b)
		b, err := notification.AppendJSON(b, n)
		to = len(b)
		return b, err
	})
	if err == nil {
		r.Notification = out[from:to:to]
		err = r.validate()
	}
	if err != nil || len(out) > MaxRecordSize {
		s, err := Schedule(n, due, topic, now)
		if err != nil {
			return queue.Message{}, err
		}
		return Message(s)
	}
	return queue.Message{Topic: topics.Schedule, Key: []byte(r.ID), Value: out, Time: r.At}, nil
}

// CancelRecord is the record by which event eventID, of time eventTime
// (zero when it has none), cancels keys, written at now.
func CancelRecord(eventID string, eventTime time.Time, keys []string, now time.Time) *Record {
	return &Record{Kind: KindCancel, Keys: keys, EventID: eventID, Due: eventTime.UTC(), At: now.UTC()}
}

// ReplaceRecord is the record by which event eventID, of time eventTime,
// replaces what earlier events scheduled under keys (routing.yaml schedule:
// replace:), written at now. It is a cancel record that withdraws what
// events at least a second earlier than eventTime scheduled, and not what
// eventID itself schedules: schedules carry their event's time in whole
// seconds (the notification's event_time), and a cancel record's due is
// the cancelling event's time, which covers CancelSkew more. So its due
// is eventTime's whole second less CancelSkew and a second. It is written
// as a cancel record rather than a new kind so that schedulers of the
// release before, which refuse unknown kinds and fields, apply it alike
// during a rolling deploy. A zero eventTime cannot be ordered, and nil is
// returned: such an event replaces nothing. Nor does one in 1970's first
// second or before (a producer's unset clock), whose reach would be
// before the Unix epoch: a script of the release before reads a negative
// time in a tombstone as "any", which would withdraw every later
// confirmation's reminder for the tombstone's life (an outside review).
func ReplaceRecord(eventID string, eventTime time.Time, keys []string, now time.Time) *Record {
	sec := eventTime.Truncate(time.Second)
	if eventTime.IsZero() || sec.Add(-time.Second).Before(time.Unix(0, 0)) {
		return nil
	}
	return CancelRecord(eventID, sec.Add(-CancelSkew-time.Second), keys, now)
}

// EventTime is the time of r's event, zero when it has none: a cancel
// record's due; for a schedule record, the time of the event that
// scheduled its notification, its data's event_time (RFC 3339, whole
// seconds, as the planner writes it; zero too when the notification does
// not parse). The schedule record itself carries no such field, so that
// schedulers of an earlier release, which refuse unknown fields, still
// read it. It parses the notification: the scheduler reads it only for
// records with cancel keys, the ones a cancellation can withdraw.
func (r *Record) EventTime() time.Time {
	if r.Kind == KindCancel {
		return r.Due
	}
	return eventTimeOf(r.Notification)
}

// eventTimeOf finds data.event_time in a notification's compact JSON
// without parsing the rest: encoding/json took 21 µs for a reminder's
// 2 KB, a quarter of what indexing the record costs. The key is found as
// the bytes "event_time":" after a comma or a brace. Inside a JSON string
// every quote is escaped, so those bytes with their unescaped quotes are a
// key named event_time at an object's top level, and the notification's
// only object with such a key is its data (TestEventTimeOfAgreesWithJSON).
// A value that is not an RFC 3339 time, or JSON with spaces between
// tokens, gives zero: unknown, which a cancellation covers.
func eventTimeOf(n []byte) time.Time {
	const key = `"event_time":"`
	for i := 0; i < len(n); {
		j := bytes.Index(n[i:], []byte(key))
		if j < 0 {
			break
		}
		j += i
		if j > 0 && (n[j-1] == ',' || n[j-1] == '{') {
			v := n[j+len(key):]
			end := bytes.IndexByte(v, '"')
			if end < 0 {
				break
			}
			t, err := time.Parse(time.RFC3339, string(v[:end]))
			if err != nil {
				break
			}
			return t
		}
		i = j + 1
	}
	return time.Time{}
}

// Covers reports whether a cancellation by an event at cancelled
// withdraws what an event at scheduled scheduled under the same key:
// unless the scheduling event is more than CancelSkew later. A zero time
// cannot be ordered, and is covered.
func Covers(cancelled, scheduled time.Time) bool {
	upTo := reach(cancelled)
	return upTo.IsZero() || scheduled.IsZero() || !scheduled.After(upTo)
}

// reach is the latest scheduling event's time a cancellation by an event
// at t covers (Cancellation.At): t and CancelSkew; zero, any, when t is.
func reach(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Add(CancelSkew)
}

// EntryID names the wait of notification id until due at attempt:
// id@<due, Unix milliseconds>.<attempt>. (Built in one allocation; with
// fmt.Sprintf it took three, for every notification the dispatcher holds.)
func EntryID(id string, due time.Time, attempt int) string {
	var sb strings.Builder
	sb.Grow(len(id) + 1 + 20 + 1 + 20)
	sb.WriteString(id)
	sb.WriteByte('@')
	var num [20]byte
	sb.Write(strconv.AppendInt(num[:0], due.UnixMilli(), 10))
	sb.WriteByte('.')
	sb.Write(strconv.AppendInt(num[:0], int64(attempt), 10))
	return sb.String()
}

// NotificationID is the notification id of an EntryID.
func NotificationID(entry string) string {
	id, _, _ := strings.Cut(entry, "@")
	return id
}

// Message is r as a record of the schedule topic: a schedule and its done
// mark share the notification id as key (one partition, in order); a
// cancel is keyed by its event.
func Message(r *Record) (queue.Message, error) {
	b, err := Encode(r)
	if err != nil {
		return queue.Message{}, err
	}
	key := r.ID
	if r.Kind == KindCancel {
		key = r.EventID
		if key == "" {
			key = r.Keys[0]
		}
	}
	return queue.Message{Topic: topics.Schedule, Key: []byte(key), Value: b, Time: r.At}, nil
}
