// Package dispatcher is the first pipeline stage: a booking event in, the
// notifications it implies out, each published to its channel's topic keyed
// by recipient.
//
// Handle is a queue.Handler. An event that cannot be decoded or validated is
// written to the DLQ with its reason and acknowledged, so it never blocks its
// partition; an event type with no routing is counted and skipped. A
// recipient's address that is malformed or not allowed (package address)
// costs only that message: it is written to the DLQ as a per-recipient
// refusal naming the recipient by id, published together with the event's
// other notifications. Only a failure to publish returns an error, so the
// runtime retries the event — republishing is safe because notification ids
// are deterministic and the channel workers deduplicate them.
package dispatcher

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

// Dispatcher publishes the notifications planned for each event.
type Dispatcher struct {
	Planner interface {
		PlanEvent(raw []byte) (*EventPlan, error)
	}
	Publisher queue.Publisher
	Logger    *zap.Logger
	Metrics   *obs.Metrics
}

// HeaderEventID lets tooling follow an event without decoding the value.
const HeaderEventID = "herald-event-id"

// Handle plans and publishes one event record.
func (d *Dispatcher) Handle(ctx context.Context, m *queue.Message) error {
	plan, err := d.Planner.PlanEvent(m.Value)
	switch {
	case errors.Is(err, ErrUnknownType):
		d.Metrics.Events.WithLabelValues(obs.EventUnknown).Inc()
		d.Logger.Debug("event type has no routing; skipped", zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(err))
		return nil
	case err != nil:
		rec := dlq.Record(m, err, dlq.Info{Stage: "dispatcher", Attempts: 1})
		if err := d.Publisher.Publish(ctx, rec); err != nil {
			return err
		}
		reason := string(failure.ReasonOf(err))
		d.Metrics.Events.WithLabelValues(obs.EventPoison).Inc()
		d.Metrics.DLQWrites.WithLabelValues("dispatcher", reason).Inc()
		d.Logger.Warn("event dead-lettered", zap.String("outcome", obs.OutcomeDeadLettered), zap.String("reason", reason),
			zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(err))
		return nil
	}
	ns := plan.Notifications
	d.Metrics.Fanout.Observe(float64(len(ns)))
	if len(ns) == 0 && len(plan.Refused) == 0 {
		d.Metrics.Events.WithLabelValues(obs.EventNoRecipients).Inc()
		return nil
	}
	msgs := make([]queue.Message, len(ns), len(ns)+len(plan.Refused))
	now := time.Now()
	for i := range ns {
		n := &ns[i]
		b, err := notification.Encode(n)
		if err != nil {
			return err
		}
		hs := make([]queue.Header, 0, len(m.Headers)+1)
		hs = append(hs, m.Headers...) // trace context and the producer's own headers travel on
		hs = append(hs, queue.Header{Key: HeaderEventID, Value: []byte(n.EventID)})
		msgs[i] = queue.Message{Topic: topics.Channel(n.Channel), Key: []byte(n.RecipientID), Value: b, Headers: hs, Time: now}
	}
	msgs = append(msgs, refusals(m, plan.Refused)...)
	if err := d.Publisher.Publish(ctx, msgs...); err != nil {
		return err
	}
	d.refused(m, plan.Refused)
	if len(ns) == 0 {
		d.Metrics.Events.WithLabelValues(obs.EventNoRecipients).Inc()
		return nil
	}
	d.Metrics.Events.WithLabelValues(obs.EventDispatched).Inc()
	d.Logger.Debug("event dispatched", zap.String("event_id", ns[0].EventID), zap.Int("notifications", len(ns)),
		zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset))
	return nil
}
