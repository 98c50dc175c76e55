package dlq_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

// A source record too large for the DLQ topic is kept as a prefix with its
// original length, so that writing it can succeed and the partition moves
// on; smaller ones are kept whole.
func TestRecordBoundsValue(t *testing.T) {
	err := failure.Poisoned(failure.ReasonDecode, errors.New("too big"))
	for _, n := range []int{0, 10, dlq.MaxValueSize, dlq.MaxValueSize + 1, 4 << 20} {
		src := &queue.Message{Topic: "t", Value: bytes.Repeat([]byte("x"), n)}
		rec := dlq.Record(src, err, dlq.Info{Stage: "dispatcher"})
		trunc := string(rec.Header(dlq.HeaderTruncated))
		switch {
		case n <= dlq.MaxValueSize && (len(rec.Value) != n || trunc != ""):
			t.Errorf("%d bytes: kept %d, truncated header %q", n, len(rec.Value), trunc)
		case n > dlq.MaxValueSize && (len(rec.Value) != dlq.MaxValueSize || trunc != strconv.Itoa(n)):
			t.Errorf("%d bytes: kept %d, truncated header %q", n, len(rec.Value), trunc)
		}
	}
}

// Whatever the source record carries, the DLQ record herald builds stays
// within queue.MaxRecordBytes: source headers are dropped before the
// herald-* ones, and the value gives way last.
func TestRecordFitsMaxRecordBytes(t *testing.T) {
	err := failure.Poisoned(failure.ReasonDecode, errors.New(strings.Repeat("e", 5000)))
	big := bytes.Repeat([]byte("h"), 300_000)
	for _, src := range []*queue.Message{
		{Topic: "t", Value: bytes.Repeat([]byte("x"), dlq.MaxValueSize)},
		{Topic: "t", Key: []byte("k"), Value: bytes.Repeat([]byte("x"), dlq.MaxValueSize), Headers: []queue.Header{{Key: "a", Value: big}, {Key: "b", Value: big}}},
		{Topic: "t", Key: big, Value: bytes.Repeat([]byte("x"), 4<<20), Headers: []queue.Header{{Key: "a", Value: big}}},
	} {
		rec := dlq.Record(src, err, dlq.Info{Stage: "dispatcher"})
		if rec.Size() > queue.MaxRecordBytes {
			t.Errorf("DLQ record of %d bytes for a source of %d", rec.Size(), src.Size())
		}
		if string(rec.Header(dlq.HeaderReason)) != "decode" {
			t.Errorf("the reason was dropped")
		}
		if len(rec.Value) < len(src.Value) && string(rec.Header(dlq.HeaderTruncated)) != strconv.Itoa(len(src.Value)) {
			t.Errorf("value cut to %d of %d without the original length", len(rec.Value), len(src.Value))
		}
	}
}

// refusing is a DLQ topic whose max.message.bytes is limit: larger records
// are refused for good, as kafkarun.Producer reports it.
type refusing struct {
	limit int
	got   []queue.Message
	tries int
}

func (p *refusing) Publish(_ context.Context, msgs ...queue.Message) error {
	p.tries++
	for _, m := range msgs {
		if m.Size() > p.limit {
			return failure.Perm(failure.ReasonTooLarge, errors.New("[10] Message Size Too Large"))
		}
	}
	p.got = append(p.got, msgs...)
	return nil
}

// A DLQ record refused whole is written again cut down, keeping the
// herald-* headers and as much of the value as the topic takes; the
// number of tries is bounded (it halves the value), and a topic that
// takes nothing at all ends in an error, not a loop.
func TestWriteRefusedRecord(t *testing.T) {
	cause := failure.Perm(failure.ReasonTooLarge, errors.New("notification too large"))
	src := &queue.Message{Topic: "herald.push.v1", Key: []byte("mem_1"), Value: bytes.Repeat([]byte("<"), 500_000),
		Headers: []queue.Header{{Key: "traceparent", Value: bytes.Repeat([]byte("t"), 200)}}}
	rec := dlq.Record(src, cause, dlq.Info{Stage: "push", Channel: "push"})
	for _, limit := range []int{1 << 20, 64 << 10, 2048} {
		p := &refusing{limit: limit}
		if err := dlq.Write(context.Background(), p, rec); err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		if len(p.got) != 1 {
			t.Fatalf("limit %d: %d records written", limit, len(p.got))
		}
		got := p.got[0]
		e, err := dlq.Decode(&got)
		if err != nil {
			t.Fatalf("limit %d: the written record does not decode: %v", limit, err)
		}
		if e.Reason != "too_large" || e.Stage != "push" {
			t.Errorf("limit %d: reason %q stage %q", limit, e.Reason, e.Stage)
		}
		whole := limit >= rec.Size()
		trunc := string(got.Header(dlq.HeaderTruncated))
		switch {
		case whole && (len(got.Value) != len(src.Value) || trunc != ""):
			t.Errorf("limit %d: value %d bytes, truncated %q; want it whole", limit, len(got.Value), trunc)
		case !whole && (trunc != strconv.Itoa(len(src.Value)) || len(got.Value) < (limit-1500)/2):
			t.Errorf("limit %d: value %d bytes, truncated %q", limit, len(got.Value), trunc)
		}
		t.Logf("limit %d: %d tries, value %d bytes", limit, p.tries, len(got.Value))
	}
	p := &refusing{limit: 10}
	if err := dlq.Write(context.Background(), p, rec); err == nil || p.tries > 25 {
		t.Errorf("a DLQ topic that takes nothing: %v after %d tries", err, p.tries)
	}
}

// The largest notification herald makes, on its last retry, with the
// source's headers, is dead-lettered whole, and `herald dlq replay` can
// send it back (it could not when notifications of 256 KiB met events of
// 1 MiB, issue 10).
func TestLargestNotificationReplays(t *testing.T) {
	n := &notification.Notification{EventID: "evt_1", EventType: "gym.booking.confirmed", Template: "gym.booking.confirmed",
		Channel: notification.Email, Locale: "en", RecipientID: "mem_1", To: "a@example.com",
		CreatedAt: time.Now(), Data: notification.DataOf(map[string]string{"note": ""})}
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	b, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	newLimit := notification.MaxEncodedSize - 1<<10
	// The note's length is written before it as a varint, which grows
	// from the empty note's one byte.
	rest := newLimit - len(b) + 1
	l := rest - 1
	for len(binary.AppendUvarint(nil, uint64(l)))+l > rest {
		l--
	}
	n.Data = n.Data.With(notification.Field{Key: "note", Value: strings.Repeat("<", l)})
	if b, err = notification.Encode(n); err != nil || len(b) != newLimit {
		t.Fatalf("%d bytes: %v", len(b), err)
	}
	n.Attempt, n.FirstFailedAt, n.NotBefore = 7, time.Now(), time.Now()
	if b, err = notification.Encode(n); err != nil {
		t.Fatal(err)
	}
	src := &queue.Message{Topic: topics.Retry(notification.Email), Key: []byte("mem_1"), Value: b,
		Headers: []queue.Header{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}}
	rec := dlq.Record(src, failure.Perm(failure.ReasonExhausted, errors.New("after 8 attempts")), dlq.Info{Stage: "email", Channel: "email", NotificationID: n.ID})
	if len(rec.Value) != len(b) || rec.Header(dlq.HeaderTruncated) != nil || rec.Size() > queue.MaxRecordBytes {
		t.Fatalf("DLQ record: value %d of %d bytes, record %d bytes", len(rec.Value), len(b), rec.Size())
	}
	e, err := dlq.Decode(&rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := dlq.Replay(e, "gym.bookings.v1", time.Now())
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if _, err := notification.Decode(back.Value); err != nil {
		t.Errorf("the replayed notification is refused: %v", err)
	}
}
