package dispatcher

import (
	"context"
	"errors"
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
	// Now stamps CreatedAt and decides quiet hours and schedules; nil means
	// time.Now. It never affects IDs.
	Now func() time.Time
	// SMS decides which phone numbers may be texted (allowed countries,
	// denied premium ranges); nil means address.DefaultSMSPolicy.
	SMS *address.SMSPolicy
	// Choices looks up people's stored preferences (package prefs), in one
	// round trip for the event's recipients; nil means none are stored.
	// An error is retryable: the event is tried again.
	Choices func(ctx context.Context, ids []string) (map[string]templates.Choices, error)
	// NoQuietHours sends at once what quiet hours would defer.
	NoQuietHours bool
	// MaxAhead bounds how far ahead a notification may be scheduled
	// (schedule.MaxAhead in herald run); one due later is refused. Zero
	// means no bound.
	MaxAhead time.Duration
}

// Routes is what the planner needs of a template set.
type Routes interface {
	Known(eventType string) bool
	PlanWith(ev *events.Event, now time.Time, opts templates.PlanOptions) ([]notification.Notification, []templates.Refusal, error)
	Cancels(ev *events.Event) []string
	Replaces(ev *events.Event) []string
}

// Refusal is one recipient's message on one channel that will not be sent
// because its address was refused (templates.Refusal).
type Refusal = templates.Refusal

// EventPlan is what one event becomes: the notifications to publish, the
// messages refused per recipient, which go to the DLQ on their own, the
// cancel keys of scheduled notifications the event withdraws, and the keys
// under which it replaces what earlier events scheduled.
type EventPlan struct {
	Notifications []notification.Notification
	Refused       []Refusal
	Cancels       []string
	Replaces      []string
	// EventID is the event's id, EventTime its time (zero when it has
	// none); Now the time the plan was made at.
	EventID   string
	EventTime time.Time
	Now       time.Time
}

// Plan decodes raw and plans the notifications that go out at once,
// leaving out any whose address is refused and any not due yet (a
// schedule, quiet hours): PlanEvent reports those. Errors are as for
// PlanEvent.
func (p *Planner) Plan(raw []byte) ([]notification.Notification, error) {
	ep, err := p.PlanEvent(context.Background(), raw)
	if err != nil {
		return nil, err
	}
	now := ep.Notifications[:0:0]
	for _, n := range ep.Notifications {
		if !n.DueAt.After(ep.Now) {
			now = append(now, n)
		}
	}
	return now, nil
}

// PlanEvent decodes raw and plans its notifications. Errors are
// ErrUnknownType (skip), poison from decoding and validation
// (dead-letter) with their reason: what makes the whole event unusable,
// or a retryable failure to look up preferences. A recipient's bad or
// disallowed address is not an error: it is one Refusal, and everyone
// else's messages are still planned. An event with no reachable recipient
// yields none and no error.
func (p *Planner) PlanEvent(ctx context.Context, raw []byte) (*EventPlan, error) {
	ev, err := events.Decode(raw)
	if err != nil {
		return nil, err
	}
	if !p.Templates.Known(ev.Type) {
		cancels := p.Templates.Cancels(ev)
		if len(cancels) > 0 { // an event routed only to cancel schedules
			return &EventPlan{Cancels: cancels, EventID: ev.ID, EventTime: ev.Time, Now: p.now()}, nil
		}
		return nil, fmt.Errorf("%w %q", ErrUnknownType, ev.Type)
	}
	now := p.now()
	policy := p.SMS
	if policy == nil {
		policy = defaultSMS
	}
	opts := templates.PlanOptions{Check: policy.Deliverable, NoQuietHours: p.NoQuietHours}
	if p.Choices != nil {
		// Looked up once planning has read the event's people, in one
		// round trip for all of them.
		opts.Lookup = func(ids []string) (func(string) templates.Choices, error) {
			chosen, err := p.Choices(ctx, ids)
			if err != nil {
				return nil, failure.Retry(failure.ReasonUnavailable, fmt.Errorf("preferences: %w", err))
			}
			return func(id string) templates.Choices { return chosen[id] }, nil
		}
	}
	ns, refused, err := p.Templates.PlanWith(ev, now, opts)
	if err != nil {
		return nil, err
	}
	if p.MaxAhead > 0 {
		kept := ns[:0]
		for _, n := range ns {
			if n.DueAt.Sub(now) > p.MaxAhead {
				refused = append(refused, Refusal{EventID: n.EventID, EventType: n.EventType, Template: n.Template, Channel: n.Channel,
					RecipientID: n.RecipientID, Err: tooFarAhead{failure.Errorf(failure.Permanent, failure.ReasonInvalid,
						"scheduled for %s, more than %s ahead", n.DueAt.UTC().Format(time.RFC3339), aheadText(p.MaxAhead))}})
				continue
			}
			kept = append(kept, n)
		}
		ns = kept
	}
	return &EventPlan{Notifications: ns, Refused: refused, Cancels: p.Templates.Cancels(ev), Replaces: p.Templates.Replaces(ev),
		EventID: ev.ID, EventTime: ev.Time, Now: now}, nil
}

// aheadText is d in days when it is whole days ("366 days"), else as
// time.Duration writes it.
func aheadText(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// tooFarAhead marks the refusal of a message planned further ahead than
// Planner.MaxAhead, so that its log line does not call it an address
// refusal.
type tooFarAhead struct{ error }

func (e tooFarAhead) Unwrap() error { return e.error }

func (p *Planner) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
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
	if len(rs) == 0 {
		return // most events: no logger to build
	}
	log := obs.OutcomeLogger(d.Logger)
	for i := range rs {
		r := &rs[i]
		reason := string(failure.ReasonOf(r.Err))
		d.Metrics.Notifications.WithLabelValues(string(r.Channel), obs.OutcomeRefused, reason).Inc()
		d.Metrics.DLQWrites.WithLabelValues("dispatcher", reason).Inc()
		msg := "recipient address refused"
		if errors.As(r.Err, new(tooFarAhead)) {
			msg = "message scheduled too far ahead refused"
		}
		log.Warn(msg, zap.String("outcome", obs.OutcomeRefused), zap.String("reason", reason),
			zap.String("event_id", r.EventID), zap.String("template", r.Template), zap.String("channel", string(r.Channel)),
			zap.String("recipient_id", r.RecipientID), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(r.Err))
	}
}
