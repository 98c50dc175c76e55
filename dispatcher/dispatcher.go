// Package dispatcher is the first pipeline stage: a booking event in, the
// notifications it implies out, each published to its channel's topic keyed
// by recipient.
//
// Handle is a queue.Handler. An event that cannot be decoded or validated is
// written to the DLQ with its reason and acknowledged, so it never blocks its
// partition; an event type with no routing is counted and skipped. So is
// an event with a notification that can never be written — larger than
// notification.MaxEncodedSize, or refused for good by the broker: its other
// notifications are published and the event is dead-lettered with reason
// too_large (or the broker's), so one record never holds its partition. A
// recipient's address that is malformed or not allowed (package address)
// costs only that message: it is written to the DLQ as a per-recipient
// refusal naming the recipient by id, published together with the event's
// other notifications. Only a retryable failure to publish returns an
// error, so the runtime retries the event — republishing is safe because
// notification ids are deterministic and the channel workers deduplicate
// them.
package dispatcher

import (
	"cmp"
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/topics"
)

// Dispatcher publishes the notifications planned for each event.
type Dispatcher struct {
	Planner interface {
		PlanEvent(ctx context.Context, raw []byte) (*EventPlan, error)
	}
	Publisher queue.Publisher
	Logger    *zap.Logger
	Metrics   *obs.Metrics
}

// HeaderEventID lets tooling follow an event without decoding the value.
const HeaderEventID = "herald-event-id"

// Handle plans and publishes one event record.
func (d *Dispatcher) Handle(ctx context.Context, m *queue.Message) error {
	// The events of one fetch are planned side by side: the producer
	// holds the first to publish briefly for the others (kafkarun.Producer
	// Expect), so that they go in one produce request.
	ctx, done := queue.Expect(ctx, d.Publisher)
	defer done()
	plan, err := d.Planner.PlanEvent(ctx, m.Value)
	switch {
	case err == nil:
	case errors.Is(err, ErrUnknownType):
		d.Metrics.Events.WithLabelValues(obs.EventUnknown).Inc()
		d.Logger.Debug("event type has no routing; skipped", zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(err))
		return nil
	case isRetry(err):
		return err // preferences unavailable: the runtime tries again
	default:
		return d.deadLetter(ctx, m, err)
	}
	ns := plan.Notifications
	d.Metrics.Fanout.Observe(float64(len(ns)))
	if len(ns) == 0 && len(plan.Refused) == 0 && len(plan.Cancels) == 0 && len(plan.Replaces) == 0 {
		d.Metrics.Events.WithLabelValues(obs.EventNoRecipients).Inc()
		return nil
	}
	msgs := make([]queue.Message, 0, len(ns)+len(plan.Refused)+1)
	now := time.Now()
	if len(plan.Cancels) > 0 {
		// In the same Publish as the event's schedules: an event that both
		// schedules and cancels (a re-booking) is applied whole or not.
		c, err := schedule.Message(schedule.CancelRecord(plan.EventID, plan.EventTime, plan.Cancels, now))
		if err != nil {
			return d.deadLetter(ctx, m, err)
		}
		msgs = append(msgs, c)
	}
	if len(plan.Replaces) > 0 {
		// A later event of a schedule's key (a booking confirmed again
		// with its class's new time) withdraws what earlier ones
		// scheduled, in the same Publish as its own schedules. Replaces
		// is empty for an event without a time, which cannot be ordered.
		if r := schedule.ReplaceRecord(plan.EventID, plan.EventTime, plan.Replaces, now); r != nil {
			c, err := schedule.Message(r)
			if err != nil {
				return d.deadLetter(ctx, m, err)
			}
			c.Headers = []queue.Header{{Key: schedule.HeaderReplace, Value: []byte("1")}}
			msgs = append(msgs, c)
		}
	}
	held := 0
	var refused error // the first notification that can never be written
	// Every notification of the event carries the event's headers (trace
	// context and the producer's own) and its id: one slice for all of
	// them, made with the first, since nothing that publishes a message
	// changes its headers.
	var hs []queue.Header
	for i := range ns {
		n := &ns[i]
		if n.ViaScheduler(plan.Now) {
			// Not due yet (scheduled, or in quiet hours), or cancellable:
			// the scheduler holds it and publishes it to its channel topic
			// when due, unless an event cancelled it — also one due now,
			// whose cancellation may have been read first. Its record
			// carries the JSON form (Schedule applies the same limits),
			// so the binary form is not built for it.
			sm, err := schedule.ScheduleMessage(n, n.DueAt, topics.Channel(n.Channel), now)
			if err == nil {
				msgs = append(msgs, sm)
				held++
				continue
			}
			refused = cmp.Or(refused, err)
			continue
		}
		b, err := notification.Encode(n)
		if err != nil {
			if failure.ClassOf(err) == failure.Retryable {
				return err
			}
			refused = cmp.Or(refused, err)
			continue
		}
		if hs == nil {
			hs = make([]queue.Header, 0, len(m.Headers)+1)
			hs = append(hs, m.Headers...)
			hs = append(hs, queue.Header{Key: HeaderEventID, Value: []byte(n.EventID)}) // the event's, as every one of its notifications'
		}
		msgs = append(msgs, queue.Message{Topic: topics.Channel(n.Channel), Key: []byte(n.RecipientID), Value: b, Headers: hs, Time: now})
	}
	msgs = append(msgs, refusals(m, plan.Refused)...)
	if err := d.Publisher.Publish(ctx, msgs...); err != nil {
		if failure.ClassOf(err) == failure.Retryable {
			return err
		}
		refused = cmp.Or(refused, err)
	}
	if refused != nil {
		return d.deadLetter(ctx, m, refused)
	}
	d.refused(m, plan.Refused)
	if held > 0 {
		for i := range ns {
			if ns[i].ViaScheduler(plan.Now) {
				d.Metrics.Schedule.Held.WithLabelValues(string(ns[i].Channel), ns[i].Deferred).Inc()
				d.Metrics.Notifications.WithLabelValues(string(ns[i].Channel), obs.OutcomeDeferred, "").Inc()
			}
		}
	}
	if len(ns) == 0 {
		d.Metrics.Events.WithLabelValues(obs.EventNoRecipients).Inc()
		return nil
	}
	d.Metrics.Events.WithLabelValues(obs.EventDispatched).Inc()
	d.Logger.Debug("event dispatched", zap.String("event_id", ns[0].EventID), zap.Int("notifications", len(ns)),
		zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset))
	return nil
}

// deadLetter writes the event to the DLQ with cause, poison or permanent,
// and acknowledges it.
func (d *Dispatcher) deadLetter(ctx context.Context, m *queue.Message, cause error) error {
	id := dlq.EventIDOf(m.Value)
	rec := dlq.Record(m, cause, dlq.Info{Stage: "dispatcher", Attempts: 1, EventID: id})
	if err := dlq.Write(ctx, d.Publisher, rec); err != nil {
		return err
	}
	reason := string(failure.ReasonOf(cause))
	outcome := obs.EventPoison
	if failure.ClassOf(cause) != failure.Poison {
		outcome = obs.EventRefused
	}
	d.Metrics.Events.WithLabelValues(outcome).Inc()
	d.Metrics.DLQWrites.WithLabelValues("dispatcher", reason).Inc()
	obs.OutcomeLogger(d.Logger).Warn("event dead-lettered", zap.String("outcome", obs.OutcomeDeadLettered), zap.String("reason", reason),
		zap.String("class", failure.ClassOf(cause).String()), zap.String("event_id", id),
		zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(cause))
	return nil
}

// isRetry reports whether err is explicitly classified retryable (the
// preference store unavailable). Planning errors without a class are the
// event's fault and dead-lettered, as before preferences existed.
func isRetry(err error) bool {
	var fe *failure.Error
	return errors.As(err, &fe) && fe.Class == failure.Retryable
}
