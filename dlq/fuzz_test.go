package dlq_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/queue"
)

// FuzzDecode: whatever a DLQ record holds (it is outside input by the time
// an operator replays it), Decode and Replay either succeed consistently or
// fail with their sentinel errors; they never panic.
func FuzzDecode(f *testing.F) {
	good := channelRecord(f, notif(f))
	f.Add(good.Value, "sms", "sms", "unsubscribed", "permanent", "2026-11-23T07:00:00Z", "2026-11-23T08:00:00Z", "6")
	f.Add([]byte(`{"specversion":"1.0"}`), "dispatcher", "", "invalid", "poison", "2026-11-23T07:00:00Z", "2026-11-23T07:00:00Z", "1")
	f.Add([]byte{0xff}, "push", "push", "x", "retryable", "", "bad", "-1")
	f.Fuzz(func(t *testing.T, value []byte, stage, channel, reason, class, first, last, attempts string) {
		m := queue.Message{Value: value, Headers: []queue.Header{
			{Key: dlq.HeaderStage, Value: []byte(stage)}, {Key: dlq.HeaderChannel, Value: []byte(channel)},
			{Key: dlq.HeaderReason, Value: []byte(reason)}, {Key: dlq.HeaderClass, Value: []byte(class)},
			{Key: dlq.HeaderFirstFailure, Value: []byte(first)}, {Key: dlq.HeaderLastFailure, Value: []byte(last)},
			{Key: dlq.HeaderAttempts, Value: []byte(attempts)},
		}}
		e, err := dlq.Decode(&m)
		if err != nil {
			if !errors.Is(err, dlq.ErrMalformed) {
				t.Fatalf("Decode error without ErrMalformed: %v", err)
			}
			return
		}
		if e.Reason == "" || e.Stage == "" || e.LastFailure.Before(e.FirstFailure) {
			t.Fatalf("accepted an incomplete entry: %+v", e)
		}
		r, err := dlq.Replay(e, "gym.bookings.v1", time.Unix(0, 0))
		if err != nil {
			if !errors.Is(err, dlq.ErrNotReplayable) {
				t.Fatalf("Replay error without ErrNotReplayable: %v", err)
			}
			return
		}
		if r.Topic == "" || (&r).Header(dlq.HeaderReplay) == nil {
			t.Fatalf("replay record without topic or replay header: %+v", r)
		}
	})
}
