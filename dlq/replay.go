package dlq

import (
	"errors"
	"fmt"
	"time"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

// ErrNotReplayable is wrapped by every Replay error: the record is skipped
// and the rest of the replay goes on.
var ErrNotReplayable = errors.New("not replayable")

// Replay builds the record that sends e back through the pipeline:
//
//   - a dispatcher record (an event) goes back to eventsTopic as it was,
//     provided it now decodes and validates: an event that would only fail
//     again is reported, not looped;
//   - a channel record (a notification) goes to that channel's topic with
//     its id kept and its retry state reset (attempt 0, no not-before, no
//     first failure), so it gets a whole new retry ladder but is still the
//     same message to the idempotency keys.
//
// A per-recipient refusal (Entry.RecipientID set) is never replayed: its
// address was refused by the dispatcher and would be refused again, and the
// rest of its event was delivered. The fix is at the source: correct the
// person's address and have the booking service publish the event again
// (notifications already sent are recognised by their ids and not repeated).
//
// Both carry HeaderReplay, which lets the channel worker re-arm a failed
// idempotency key (never a sent one): replaying twice delivers once.
func Replay(e *Entry, eventsTopic string, at time.Time) (queue.Message, error) {
	hs := append(append([]queue.Header(nil), e.Headers...), queue.Header{Key: HeaderReplay, Value: []byte(at.UTC().Format(time.RFC3339))})
	if e.RecipientID != "" {
		return queue.Message{}, fmt.Errorf("%w: recipient %s's %s message was refused (%s); replaying the same event cannot change that: "+
			"correct it at the source (the person's address, or the event's time) and publish the event again", ErrNotReplayable, e.RecipientID, orDash(e.Channel), e.Reason)
	}
	if e.Stage == "dispatcher" {
		if _, err := events.Decode(e.Value); err != nil {
			return queue.Message{}, fmt.Errorf("%w: the event still does not decode: %v", ErrNotReplayable, err)
		}
		return queue.Message{Topic: eventsTopic, Key: e.Key, Value: e.Value, Headers: hs}, nil
	}
	n, err := notification.Decode(e.Value)
	if err != nil {
		return queue.Message{}, fmt.Errorf("%w: the notification does not decode: %v", ErrNotReplayable, err)
	}
	if string(n.Channel) != e.Stage {
		return queue.Message{}, fmt.Errorf("%w: a %s notification in a record of stage %s", ErrNotReplayable, n.Channel, e.Stage)
	}
	if e.NotificationID != "" && e.NotificationID != n.ID {
		return queue.Message{}, fmt.Errorf("%w: header notification id %s does not match the record's %s", ErrNotReplayable, e.NotificationID, n.ID)
	}
	n.Attempt, n.NotBefore, n.FirstFailedAt = 0, time.Time{}, time.Time{}
	b, err := notification.Encode(n)
	if err != nil {
		return queue.Message{}, fmt.Errorf("%w: %v", ErrNotReplayable, err)
	}
	return queue.Message{Topic: topics.Channel(n.Channel), Key: e.Key, Value: b, Headers: hs}, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
