// Package notification defines the unit of work that travels on the channel
// topics (herald.email.v1, herald.sms.v1, herald.push.v1): one message to one
// address on one channel.
//
// Its ID is derived only from what identifies the message — the event id,
// template, channel, recipient id and address — so reprocessing an event
// after a crash, rebalance or replay yields the same IDs, and duplicates are
// recognisable anywhere downstream. Nothing here knows Kafka, Redis or
// providers.
package notification

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/gymhq/herald/failure"
)

// Channel is a delivery channel. Each has its own topic and worker group.
type Channel string

const (
	Email Channel = "email"
	SMS   Channel = "sms"
	Push  Channel = "push"
)

// Priority orders work and is passed to providers that understand it (FCM).
type Priority string

const (
	Normal Priority = "normal"
	High   Priority = "high"
)

// MaxCancelKeys bounds a notification's cancel keys, as a schedule record
// bounds its own: a rule's cancel_on lists a few.
const MaxCancelKeys = 64

// MaxEncodedSize bounds a notification on the wire; a channel worker treats
// larger input as poison. It is also the DLQ's value limit
// (dlq.MaxValueSize), so a notification is always dead-lettered whole and
// `herald dlq replay` can send it again, and it leaves 40,000 bytes of
// queue.MaxRecordBytes for the record's key and headers. Encode refuses to
// produce anything larger, so no notification herald writes is ever
// refused by a worker for its size. How the event limit fits under it:
// docs/resilience.md, "Size limits".
const MaxEncodedSize = 960_000

// retryRoom is kept free in a new notification (attempt 0, no retry
// state) for the fields a retry adds: attempt, not_before and
// first_failed_at take under 100 bytes. A notification published by the
// dispatcher therefore still fits MaxEncodedSize on its last retry.
const retryRoom = 1 << 10

// Notification is one message to one address on one channel.
//
// Data is the flat template data (see templates/README.md and Data).
type Notification struct {
	ID          string    `json:"id"`
	EventID     string    `json:"event_id"`
	EventType   string    `json:"event_type"`
	Template    string    `json:"template"`
	Channel     Channel   `json:"channel"`
	Locale      string    `json:"locale"`
	RecipientID string    `json:"recipient_id"`
	To          string    `json:"to"`
	Data        Data      `json:"data"`
	Priority    Priority  `json:"priority"`
	CreatedAt   time.Time `json:"created_at"`
	// Attempt counts delivery attempts already made; 0 on first publication.
	Attempt int `json:"attempt"`
	// NotBefore, when set, is the earliest time a retry may be attempted.
	NotBefore time.Time `json:"not_before,omitzero"`
	// FirstFailedAt is when the first attempt failed; used for age limits.
	FirstFailedAt time.Time `json:"first_failed_at,omitzero"`

	// Category is the rule's category (templates/categories.yaml): what
	// preferences, quiet hours and caps apply to. Empty in records written
	// before categories existed, which count as transactional.
	Category string `json:"category,omitempty"`
	// TimeZone is the recipient's IANA zone, for quiet hours and caps at
	// send time; empty means the class's, then UTC.
	TimeZone string `json:"time_zone,omitempty"`
	// DueAt, when set, is when the notification is due: a scheduled one
	// (routing.yaml schedule), or one deferred by quiet hours or a cap. The
	// dispatcher and workers hand a notification not yet due to the
	// scheduler (package schedule) instead of its channel topic.
	DueAt time.Time `json:"due_at,omitzero"`
	// Deferred says why it waited: "schedule", "quiet_hours", "cap" or
	// "retry" (herald trace shows it); empty when it never did.
	Deferred string `json:"deferred,omitempty"`
	// CancelKeys are the keys whose cancellation (routing.yaml cancel_on)
	// withdraws the notification while the scheduler holds it: before it
	// is due, or while a cap or a retry holds it later.
	CancelKeys []string `json:"cancel_keys,omitempty"` // at most MaxCancelKeys
	// ExpiresAt, when set, is when the notification stops being worth
	// sending: a reminder's class start. Quiet hours and caps never defer
	// it past then.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Deferral reasons (Notification.Deferred).
const (
	DeferSchedule   = "schedule"
	DeferQuietHours = "quiet_hours"
	DeferCap        = "cap"
	DeferRetry      = "retry"
)

// DeferredLabel is d as a metric label: the Defer* constant it equals,
// else "other". The constants keep no record alive (a series keeps its
// label values for the life of the process) and bound the series.
func DeferredLabel(d string) string {
	for _, k := range [...]string{DeferSchedule, DeferQuietHours, DeferCap, DeferRetry} {
		if d == k {
			return k
		}
	}
	return "other"
}

// ViaScheduler reports whether the dispatcher hands n, just planned at
// now, to the scheduler rather than to its channel topic: it is not due
// yet (a schedule, quiet hours), or it is a scheduled rule's and due now,
// so that a cancellation read before it still withdraws it. An unscheduled
// rule's message due now goes out at once, with its cancel keys for
// whatever holds it later.
func (n *Notification) ViaScheduler(now time.Time) bool {
	return n.DueAt.After(now) || (len(n.CancelKeys) > 0 && n.Deferred == DeferSchedule)
}

// NewID derives the notification id. The parts are length-prefixed before
// hashing so that no two different tuples can collide by concatenation.
//
// It hashes "len:part|" for each part, written with strconv rather than
// fmt (a fifth of Decode's time went to fmt.Fprintf here); the bytes, and
// so the ids, are those of fmt.Fprintf(h, "%d:%s|", len(p), p).
func NewID(eventID, template string, ch Channel, recipientID, address string) string {
	var out [idLen]byte
	return string(appendID(out[:0], eventID, template, ch, recipientID, address))
}

// idLen is the length of an id NewID makes: "ntf_" and 32 hex digits.
const idLen = 4 + 32

// appendID appends NewID's id to dst. Checking a decoded record's id
// compares it with one appended to a buffer on the stack: the string
// NewID made for it was an allocation per record a worker reads.
func appendID(dst []byte, eventID, template string, ch Channel, recipientID, address string) []byte {
	var buf [256]byte
	b := buf[:0]
	for _, p := range [...]string{eventID, template, string(ch), recipientID, address} {
		b = strconv.AppendInt(b, int64(len(p)), 10)
		b = append(b, ':')
		b = append(b, p...)
		b = append(b, '|')
	}
	sum := sha256.Sum256(b)
	dst = append(dst, "ntf_"...)
	return hex.AppendEncode(dst, sum[:16])
}

// Validate checks that n is complete and self-consistent, including that its
// ID is the one its identifying fields derive.
func (n *Notification) Validate() error {
	if err := n.validateFields(); err != nil {
		return err
	}
	if !n.Data.ValidUTF8() {
		for k, v := range n.Data.All() {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return fmt.Errorf("data %q is not valid UTF-8", k)
			}
		}
	}
	return nil
}

// validateFields is Validate without the UTF-8 check of Data, for Decode:
// Parse has already made sure of it (the binary form checks every string
// it reads, the JSON form checks all of the input, and encoding/json
// unquotes to valid UTF-8), and the check was a fifth of Decode's time
// (BenchmarkDecode).
func (n *Notification) validateFields() error {
	switch {
	case n.ID == "":
		return fmt.Errorf("id is empty")
	case n.EventID == "":
		return fmt.Errorf("event_id is empty")
	case n.Template == "":
		return fmt.Errorf("template is empty")
	case !n.Channel.Valid():
		return fmt.Errorf("channel %q is not one of %s", n.Channel, Names())
	case n.To == "":
		return fmt.Errorf("to is empty")
	case n.Attempt < 0:
		return fmt.Errorf("attempt %d is negative", n.Attempt)
	case len(n.CancelKeys) > MaxCancelKeys:
		return fmt.Errorf("%d cancel keys, limit %d", len(n.CancelKeys), MaxCancelKeys)
	}
	var id [idLen]byte
	if string(appendID(id[:0], n.EventID, n.Template, n.Channel, n.RecipientID, n.To)) != n.ID {
		want := NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
		return fmt.Errorf("id %q does not match its fields (want %q)", n.ID, want)
	}
	return nil
}

// Encode serialises n for a channel topic, a retry topic or the DLQ, in
// the binary form (codec.go; docs/contracts.md §3). The result is at most
// MaxEncodedSize bytes, and at most MaxEncodedSize minus retryRoom for a
// new notification; a larger one is a permanent failure.ReasonTooLarge
// error, never bytes a worker would refuse. Like the JSON it replaced, it
// fails for a time the JSON form cannot hold (a year outside 0 to 9999),
// and writes each byte of invalid UTF-8 as U+FFFD.
//
// Encoding is deterministic: Data is written in key order, so the same
// notification is always the same bytes.
func Encode(n *Notification) ([]byte, error) {
	return encodeBinary(n, sizeLimit(n))
}

// sizeLimit is the most bytes n may take encoded.
func sizeLimit(n *Notification) int {
	if n.Attempt == 0 && n.NotBefore.IsZero() && n.FirstFailedAt.IsZero() {
		return MaxEncodedSize - retryRoom
	}
	return MaxEncodedSize
}

// JSON is the readable form of n: the JSON herald wrote for a
// notification before the binary form, with the field names of the
// struct tags, which Decode still reads. Tools show notifications in it
// (herald trace, herald dlq); it has no size limit.
//
// HTML escaping is off: json.Marshal writes each of <, > and & as a
// six-byte \u003c, so free text full of them grew sixfold and a 200 KB
// event made notifications of 1.2 MB (issue 10). The bytes are never
// embedded in HTML, so the escaping protected nothing; Decode reads both
// forms, and the JSON stays as strict.
//
// It is written by hand (appendJSON), byte for byte as encoding/json with
// HTML escaping off would write the struct.
func JSON(n *Notification) ([]byte, error) {
	return appendJSON(make([]byte, 0, JSONSizeHint(n)), n)
}

// EncodeJSON is Encode in the readable JSON form, under the same size
// limits: for a record that must stay JSON throughout, such as the
// scheduler's (package schedule), which embeds the notification as a JSON
// value. Decode reads it like the binary form.
func EncodeJSON(n *Notification) ([]byte, error) {
	return AppendJSON(make([]byte, 0, JSONSizeHint(n)), n)
}

// AppendJSON appends to b what EncodeJSON returns for n, under the same
// limits: for a record that embeds the notification, written in one
// buffer (schedule.ScheduleMessage).
func AppendJSON(b []byte, n *Notification) ([]byte, error) {
	start := len(b)
	out, err := appendJSON(b, n)
	if err != nil {
		return nil, err
	}
	if limit := sizeLimit(n); len(out)-start > limit {
		return nil, failure.Errorf(failure.Permanent, failure.ReasonTooLarge,
			"%s notification %s is %d bytes encoded, more than the %d allowed", n.Channel, n.ID, len(out)-start, limit)
	}
	return out, nil
}

// JSONSizeHint is room for most notifications' JSON.
func JSONSizeHint(n *Notification) int { return 512 + 64*n.Data.Len() }

// Decode parses and validates a notification read from a channel topic. Any
// error is classified as poison: the bytes will never become deliverable.
//
// It reads both forms: the binary one Encode writes (first byte 0x01) and
// the JSON one herald wrote before it (first byte '{' or JSON whitespace),
// which records already on the topics during a rolling deploy, dead
// letters written before it and scheduler records carry.
func Decode(b []byte) (*Notification, error) { return decode(b, false, nil) }

// decode is Decode; shared reads the binary form's strings from b in place,
// and a non-nil into is where the notification is decoded (decodeInto).
func decode(b []byte, shared bool, into *decodeInto) (*Notification, error) {
	n, err := parse(b, shared, into)
	if err != nil {
		return nil, err
	}
	if err := n.validateFields(); err != nil { // Parse checked Data's UTF-8
		return nil, failure.Poisoned(failure.ReasonInvalid, fmt.Errorf("notification: %w", err))
	}
	return n, nil
}

// DecodeShared is Decode for a record nothing writes to afterwards, as a
// consumer's fetched value: the notification's strings are read from b in
// place instead of from a copy of it (issue 14: 1.1 KB of the worker's
// 7.5 KB per notification in BenchmarkDeliver). b must not change while the
// notification or any of its strings is in use. Errors and results are
// Decode's.
func DecodeShared(b []byte) (*Notification, error) { return decode(b, true, nil) }

// DecodeSharedInto is DecodeShared into n, which is overwritten whole, with
// Data's fields read into buf's room when the record has any, instead of
// into a new notification and new fields: a channel worker reuses both for
// every record (issue 14: making a map for the data, ~2 KB, was 9% of a
// worker's CPU per notification in BenchmarkDeliver). It returns n and
// buf, grown if it had to be, for the next record; n, buf and their
// strings are valid until the caller reuses them or b changes, so
// whatever outlives that keeps copies.
func DecodeSharedInto(b []byte, n *Notification, buf []Field) (*Notification, []Field, error) {
	into := &decodeInto{n: n, data: buf[:0]}
	n, err := decode(b, true, into)
	return n, into.data, err
}

// decodeInto is where DecodeSharedInto decodes: n, and data's room for
// its Data's fields.
type decodeInto struct {
	n    *Notification
	data []Field
}

// Parse is Decode without Validate: every check of the encoding (size,
// UTF-8, structure, trailing bytes) and none of the notification's own,
// for tools that show what a refused record held. Errors are poison
// failure.ReasonDecode.
func Parse(b []byte) (*Notification, error) { return parse(b, false, nil) }

// parse is Parse; shared reads the binary form's strings from b in place,
// into as decode's.
func parse(b []byte, shared bool, into *decodeInto) (*Notification, error) {
	if len(b) > MaxEncodedSize {
		return nil, failure.Errorf(failure.Poison, failure.ReasonDecode, "notification is %d bytes, limit %d", len(b), MaxEncodedSize)
	}
	if len(b) == 0 {
		return nil, failure.Errorf(failure.Poison, failure.ReasonDecode, "notification: the record's value is empty")
	}
	switch c := b[0]; {
	case c == formatBinary:
		if shared {
			return decodeBinary(unsafe.String(unsafe.SliceData(b), len(b)), into)
		}
		return decodeBinary(string(b), into)
	case c != '{' && c != ' ' && c != '\t' && c != '\n' && c != '\r':
		// Not herald's: a JSON notification is an object. Saying so
		// reads better than the JSON parser's "invalid character 'h'
		// looking for beginning of value" for a record of plain text.
		shown := ""
		if c >= 0x20 && c < 0x7f {
			shown = fmt.Sprintf(" (%q)", rune(c))
		}
		return nil, failure.Errorf(failure.Poison, failure.ReasonDecode, "notification: format byte 0x%02x%s is neither binary format 0x%02x nor the start of a JSON object", c, shown, formatBinary)
	}
	if !utf8.Valid(b) {
		return nil, failure.Errorf(failure.Poison, failure.ReasonDecode, "notification is not valid UTF-8")
	}
	if n, ok := readJSON(b, shared, into); ok {
		return n, nil
	}
	return unmarshalJSON(b, into)
}

// unmarshalJSON reads the JSON form by encoding/json: any layout of it,
// and the errors of what is not one.
func unmarshalJSON(b []byte, into *decodeInto) (*Notification, error) {
	// Unmarshal, not a Decoder: it rejects anything after the object just
	// as strictly, without the Decoder's buffer copy (about a quarter of
	// the decode time; BenchmarkDecode).
	var n Notification
	if err := json.Unmarshal(b, &n); err != nil {
		if strings.Contains(err.Error(), "after top-level value") {
			return nil, failure.Errorf(failure.Poison, failure.ReasonDecode, "notification: trailing data after JSON object")
		}
		return nil, failure.Poisoned(failure.ReasonDecode, fmt.Errorf("notification: %w", err))
	}
	if into != nil {
		*into.n = n
		return into.n, nil
	}
	return &n, nil
}

// Readable is an encoded notification as a person should see it: the
// binary form as its JSON (JSON), anything else — the JSON form, or bytes
// that do not parse — as it is.
func Readable(b []byte) []byte {
	if len(b) == 0 || b[0] != formatBinary {
		return b
	}
	n, err := Parse(b)
	if err != nil {
		return b
	}
	j, err := JSON(n)
	if err != nil {
		return b
	}
	return j
}
