package dispatcher

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/templates"
)

// ErrUnknownType means the event decoded but no template folder routes its
// type. It is not poison: docs/contracts.md §2 has unknown types counted and skipped.
// It is templates.ErrUnknownType, so errors.Is works with either name.
var ErrUnknownType = templates.ErrUnknownType

// Planner turns raw event bytes into the notifications they imply.
// It is safe for concurrent use.
type Planner struct {
	// Templates is a *templates.Set, or a *templates.Live that a changed
	// template directory replaces while the dispatcher runs.
	Templates Routes
	// Now stamps CreatedAt; nil means time.Now. It never affects IDs.
	Now func() time.Time
	// SMS decides which phone numbers may be texted (allowed countries,
	// denied premium ranges); nil means address.DefaultSMSPolicy.
	SMS *address.SMSPolicy
}

// Routes is what the planner needs of a template set.
type Routes interface {
	Known(eventType string) bool
	PlanChecked(ev *events.Event, now time.Time, check func(notification.Channel, string) error) ([]notification.Notification, []templates.Refusal, error)
}

// Refusal is one recipient's message on one channel that will not be sent
// because its address was refused (templates.Refusal).
type Refusal = templates.Refusal

// EventPlan is what one event becomes: the notifications to publish, and
// the messages refused per recipient, which go to the DLQ on their own.
type EventPlan struct {
	Notifications []notification.Notification
	Refused       []Refusal
}

// Plan decodes raw and plans its deliverable notifications, leaving out any
// whose address is refused (PlanEvent reports those). Errors are as for
// PlanEvent.
func (p *Planner) Plan(raw []byte) ([]notification.Notification, error) {
	ep, err := p.PlanEvent(raw)
	if err != nil {
		return nil, err
	}
	return ep.Notifications, nil
}

// PlanEvent decodes raw and plans its notifications. Errors are
// ErrUnknownType (skip), or poison from decoding and validation
// (dead-letter) with their reason: what makes the whole event unusable.
// A recipient's bad or disallowed address is not an error: it is one
// Refusal, and everyone else's messages are still planned. An event with no
// reachable recipient yields none and no error.
func (p *Planner) PlanEvent(raw []byte) (*EventPlan, error) {
	ev, err := events.Decode(raw)
	if err != nil {
		return nil, err
	}
	if !p.Templates.Known(ev.Type) {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, ev.Type)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	policy := p.SMS
	if policy == nil {
		policy = defaultSMS
	}
	ns, refused, err := p.Templates.PlanChecked(ev, now(), policy.Deliverable)
	if err != nil {
		return nil, err
	}
	return &EventPlan{Notifications: ns, Refused: refused}, nil
}

var defaultSMS = address.DefaultSMSPolicy()

// refusals builds the DLQ record of each refused message of event record m.
func refusals(m *queue.Message, rs []Refusal) []queue.Message {
	out := make([]queue.Message, len(rs))
	for i := range rs {
		r := &rs[i]
		out[i] = dlq.Refusal(m, dlq.Refused{EventID: r.EventID, EventType: r.EventType, Template: r.Template,
			Channel: string(r.Channel), RecipientID: r.RecipientID}, r.Err)
	}
	return out
}

// refused counts and logs refusals once their DLQ records are written: the
// final outcome of those messages. The line names the recipient by id and
// never the address.
func (d *Dispatcher) refused(m *queue.Message, rs []Refusal) {
	for i := range rs {
		r := &rs[i]
		reason := string(failure.ReasonOf(r.Err))
		d.Metrics.Notifications.WithLabelValues(string(r.Channel), obs.OutcomeRefused, reason).Inc()
		d.Metrics.DLQWrites.WithLabelValues("dispatcher", reason).Inc()
		d.Logger.Warn("recipient address refused", zap.String("outcome", obs.OutcomeRefused), zap.String("reason", reason),
			zap.String("event_id", r.EventID), zap.String("template", r.Template), zap.String("channel", string(r.Channel)),
			zap.String("recipient_id", r.RecipientID), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(r.Err))
	}
}
