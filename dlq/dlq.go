// Package dlq turns a message that cannot be delivered into data: a record
// on herald.dlq.v1 whose value is the original bytes and whose headers say
// why, where it came from and how often it was tried. The original is then
// acknowledged, so a poison message never blocks its partition.
package dlq

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

// Header names on DLQ records.
const (
	HeaderReason          = "herald-reason"
	HeaderClass           = "herald-class"
	HeaderError           = "herald-error"
	HeaderStage           = "herald-stage"
	HeaderChannel         = "herald-channel"
	HeaderAttempts        = "herald-attempts"
	HeaderFirstFailure    = "herald-first-failure"
	HeaderLastFailure     = "herald-last-failure"
	HeaderSourceTopic     = "herald-source-topic"
	HeaderSourcePartition = "herald-source-partition"
	HeaderSourceOffset    = "herald-source-offset"
	HeaderEventID         = "herald-event-id"
	HeaderNotificationID  = "herald-notification-id"
	// HeaderRecipientID is set on a per-recipient refusal (Refusal) and
	// only there: the id of the person whose address was refused.
	HeaderRecipientID = "herald-recipient-id"
)

// maxErrorLen bounds the error text carried in a header.
const maxErrorLen = 1024

// MaxValueSize bounds the original bytes a DLQ record carries. It is at
// least the event and notification limits, so any event or notification
// herald accepts is dead-lettered whole and can be replayed. A source
// record can be larger — a booking topic configured for bigger records, an
// oversize event — and a DLQ write that can never succeed would block the
// partition for good. Longer values keep their first MaxValueSize bytes and
// HeaderTruncated gives the original length. The whole record (key, value,
// headers) is also kept within queue.MaxRecordBytes: see Record.
const MaxValueSize = notification.MaxEncodedSize

// HeaderTruncated, present when the value was cut to MaxValueSize, holds
// the original value's length in bytes.
const HeaderTruncated = "herald-truncated"

// Info describes a failure beyond the error itself.
type Info struct {
	Stage          string // "dispatcher", or the channel
	Channel        string
	Attempts       int
	FirstFailure   time.Time
	LastFailure    time.Time
	EventID        string
	NotificationID string
	RecipientID    string // only on a per-recipient refusal
}

// Record builds the DLQ record for src failing with err. Source headers are
// kept (trace context, event id) and the herald-* headers added.
func Record(src *queue.Message, err error, info Info) queue.Message {
	msg := err.Error()
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	if info.LastFailure.IsZero() {
		info.LastFailure = time.Now().UTC()
	}
	if info.FirstFailure.IsZero() {
		info.FirstFailure = info.LastFailure
	}
	hs := make([]queue.Header, 0, len(src.Headers)+14)
	for _, h := range src.Headers {
		if len(h.Key) < 7 || h.Key[:7] != "herald-" {
			hs = append(hs, h)
		}
	}
	add := func(k, v string) {
		if v != "" {
			hs = append(hs, queue.Header{Key: k, Value: []byte(v)})
		}
	}
	add(HeaderReason, string(failure.ReasonOf(err)))
	add(HeaderClass, failure.ClassOf(err).String())
	add(HeaderError, msg)
	add(HeaderStage, info.Stage)
	add(HeaderChannel, info.Channel)
	add(HeaderAttempts, strconv.Itoa(info.Attempts))
	add(HeaderFirstFailure, info.FirstFailure.UTC().Format(time.RFC3339Nano))
	add(HeaderLastFailure, info.LastFailure.UTC().Format(time.RFC3339Nano))
	add(HeaderSourceTopic, src.Topic)
	add(HeaderSourcePartition, strconv.Itoa(src.Partition))
	add(HeaderSourceOffset, strconv.FormatInt(src.Offset, 10))
	add(HeaderEventID, info.EventID)
	add(HeaderNotificationID, info.NotificationID)
	add(HeaderRecipientID, info.RecipientID)
	rec := queue.Message{Topic: topics.DLQ, Key: src.Key, Value: src.Value, Headers: hs}
	limit := MaxValueSize
	if rest := rec.Size() - len(rec.Value); rest > queue.MaxRecordBytes-MaxValueSize {
		// The source's key and headers are large enough to push the
		// record over what herald writes: keep the herald-* headers,
		// which say what failed, and give the value what is left.
		rec.Headers = heraldOnly(hs)
		if rest = rec.Size() - len(rec.Value); rest > queue.MaxRecordBytes-MaxValueSize {
			rec.Key = nil
			rest = rec.Size() - len(rec.Value)
		}
		limit = min(MaxValueSize, max(queue.MaxRecordBytes-rest, 0))
	}
	return truncate(rec, len(src.Value), limit)
}

// truncate cuts rec's value to at most n bytes, recording the original
// length (orig) when it does.
func truncate(rec queue.Message, orig, n int) queue.Message {
	if len(rec.Value) <= n {
		return rec
	}
	rec.Value = rec.Value[:n]
	hs := make([]queue.Header, 0, len(rec.Headers)+1)
	for _, h := range rec.Headers {
		if h.Key != HeaderTruncated {
			hs = append(hs, h)
		}
	}
	rec.Headers = append(hs, queue.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(orig))})
	return rec
}

func heraldOnly(hs []queue.Header) []queue.Header {
	out := make([]queue.Header, 0, len(hs))
	for _, h := range hs {
		if len(h.Key) >= 7 && h.Key[:7] == "herald-" {
			out = append(out, h)
		}
	}
	return out
}

// Write publishes rec, a record built by Record, to the DLQ. If the broker
// refuses it for good (its topic's max.message.bytes is below what herald
// writes), it writes rec again cut down — the source's own headers dropped,
// the value halved until it is accepted, down to none — so that the reason
// is recorded and the source's partition moves on. It never retries
// without end: a refusal of the smallest form, or any retryable error, is
// returned for the caller's runtime to retry as a dependency failure.
func Write(ctx context.Context, pub queue.Publisher, rec queue.Message) error {
	err := pub.Publish(ctx, rec)
	if err == nil || failure.ClassOf(err) != failure.Permanent {
		return err
	}
	orig := len(rec.Value)
	if v := rec.Header(HeaderTruncated); v != nil {
		if n, perr := strconv.Atoi(string(v)); perr == nil {
			orig = n
		}
	}
	small := rec
	small.Headers = heraldOnly(rec.Headers)
	for n := len(rec.Value) / 2; ; n /= 2 {
		small = truncate(small, orig, n)
		err = pub.Publish(ctx, small)
		if err == nil || failure.ClassOf(err) != failure.Permanent || n == 0 {
			return err
		}
	}
}

// HeaderReplay marks a record that `herald dlq replay` sent back into the
// pipeline; its value is the replay's start time (RFC 3339). A channel
// worker seeing it may re-arm the notification's failed idempotency key
// (dedupe.Rearmer) — never a sent one. Like every herald-* header, it is not
// copied onto a new DLQ record.
const HeaderReplay = "herald-replay"

// Refused is the value of a per-recipient refusal record: which message of
// which event was not sent, and to whom by id. It deliberately carries no
// address, name or other data of the person (nor the notification id,
// which is derived from the address), so the DLQ holds nothing personal for
// it; the event itself is in the booking topic for whoever needs more.
type Refused struct {
	EventID     string `json:"event_id"`
	EventType   string `json:"event_type"`
	Template    string `json:"template"`
	Channel     string `json:"channel"`
	RecipientID string `json:"recipient_id"`
}

// Refusal builds the DLQ record for one recipient's message that the
// dispatcher refused (a malformed address, an SMS destination the policy
// denies) while the rest of event src went out. Its stage is "dispatcher",
// its channel the message's, its value r as JSON, its key the recipient id,
// and HeaderRecipientID marks it. err must not quote the address.
//
// Such a record is for inspection only: Replay refuses it, since sending the
// same event again cannot change the address it refused.
func Refusal(src *queue.Message, r Refused, err error) queue.Message {
	b, _ := json.Marshal(r) // strings only: cannot fail
	ref := queue.Message{Topic: src.Topic, Partition: src.Partition, Offset: src.Offset, Key: []byte(r.RecipientID), Value: b, Headers: src.Headers}
	return Record(&ref, err, Info{Stage: "dispatcher", Channel: r.Channel, EventID: r.EventID, RecipientID: r.RecipientID})
}
