package templates

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// Plan turns a decoded event into its deliverable notifications: PlanChecked
// with address.Check, its refusals dropped. Tools that preview what an event
// would send use it; the dispatcher uses PlanChecked, which reports what it
// refuses.
//
// A channel whose addresses are subscriptions (channels.Descriptor.
// Subscribers) goes, in Plan, to SampleSubscriber when the tree has no
// subscriber for the event type: lint, render and preview show what a
// subscriber would get. The dispatcher's PlanChecked sends to real ones only.
func (s *Set) Plan(ev *events.Event, now time.Time) ([]notification.Notification, error) {
	ns, _, err := s.plan(ev, now, address.Check, true)
	return ns, err
}

// SampleSubscriber is the address Plan gives a subscription channel that
// has no subscriber for the event type.
const SampleSubscriber = "sample-subscriber"

// Refusal is one message planning refused: the address a recipient gave for
// a channel failed check. It carries the recipient's id and never the
// address, so it can be logged and dead-lettered as it is.
type Refusal struct {
	EventID     string
	EventType   string
	Template    string
	Channel     notification.Channel
	RecipientID string
	// Err is check's classified error (failure.ReasonInvalidAddress, or
	// failure.ReasonDestinationDenied for an SMS policy), which must not
	// quote the address.
	Err error
}

// PlanChecked turns a decoded event into its notifications, in routing
// order: for each rule, its recipients (in data order), each channel the
// rule sends on that the person allows and has an address for — one
// notification per push token. Every address is passed to check (nil means
// address.Check) first; one
// it refuses becomes a Refusal instead of a notification, and costs no other
// message: not the person's other channels or tokens, nor anybody else's.
// A rule with only_if_unreachable skips people whom one of those channels
// can reach (they allow it and have an address check accepts on it).
//
// PlanChecked is deterministic: the same event yields the same notification
// IDs, whatever now is. It returns an error wrapping ErrUnknownType for a
// type the set does not route, and a poison error (failure.ReasonInvalid)
// when the event lacks the recipients its routing requires.
func (s *Set) PlanChecked(ev *events.Event, now time.Time, check func(notification.Channel, string) error) ([]notification.Notification, []Refusal, error) {
	return s.plan(ev, now, check, false)
}

func (s *Set) plan(ev *events.Event, now time.Time, check func(notification.Channel, string) error, sample bool) ([]notification.Notification, []Refusal, error) {
	if check == nil {
		check = address.Check
	}
	t := s.types[ev.Type]
	if t == nil {
		return nil, nil, fmt.Errorf("%w %q", ErrUnknownType, ev.Type)
	}
	base := eventData(ev)
	out := make([]notification.Notification, 0, 2*len(t.rules))
	var refused []Refusal
	seen := map[string]bool{}
	for _, r := range t.rules {
		var people []events.Person
		if strings.HasPrefix(r.recipients, StaffPrefix) {
			people = s.staffPeople(ev, r.recipients) // none at a location the roster lacks
		} else {
			if r.optional && !ev.Has(r.recipients) {
				continue
			}
			var err error
			if people, err = ev.People(r.recipients); err != nil {
				return nil, nil, poison(fmt.Errorf("%s recipients %q: %w", r.eventType, r.recipients, err))
			}
		}
		for i := range people {
			p := &people[i]
			if s.unreachableElsewhere(ev.Type, p, r.onlyIfUnreachable, check, sample) {
				continue
			}
			locale := p.Locale
			if locale == "" {
				locale = fallbackLocale
			}
			for _, ch := range r.channels {
				if !p.Allows(string(ch)) {
					continue
				}
				for _, to := range s.addresses(ev.Type, p, ch, sample) {
					id := notification.NewID(ev.ID, r.template, ch, p.ID, to)
					if seen[id] {
						continue // a person listed twice is notified once
					}
					seen[id] = true
					if err := check(ch, to); err != nil {
						refused = append(refused, Refusal{EventID: ev.ID, EventType: ev.Type, Template: r.template,
							Channel: ch, RecipientID: p.ID, Err: err})
						continue
					}
					out = append(out, notification.Notification{
						ID:          id,
						EventID:     ev.ID,
						EventType:   ev.Type,
						Template:    r.template,
						Channel:     ch,
						Locale:      locale,
						RecipientID: p.ID,
						To:          to,
						Data:        recipientData(base, p),
						Priority:    r.priority,
						CreatedAt:   now,
					})
				}
			}
		}
	}
	return out, refused, nil
}

// unreachableElsewhere reports whether one of chs can reach p at an address
// check accepts, in which case a fallback rule does not apply to p: a
// member whose only push token is malformed still gets the SMS fallback.
func (s *Set) unreachableElsewhere(eventType string, p *events.Person, chs []notification.Channel, check func(notification.Channel, string) error, sample bool) bool {
	for _, ch := range chs {
		if !p.Allows(string(ch)) {
			continue
		}
		for _, to := range s.addresses(eventType, p, ch, sample) {
			if check(ch, to) == nil {
				return true
			}
		}
	}
	return false
}

// addresses returns where p says they can be reached on ch, by the
// channel's descriptor (for push, each distinct token), or, for a channel
// with subscribers, the addresses subscribed to the event type. Empty means
// none; anything else is checked by the caller, never edited here (an
// edited address would be somebody else's).
func (s *Set) addresses(eventType string, p *events.Person, ch notification.Channel, sample bool) []string {
	d := channels.Lookup(ch)
	if d.Subscribers != nil {
		subs := d.Subscribers(s.files[ch], eventType)
		if len(subs) == 0 && sample {
			return []string{SampleSubscriber}
		}
		return subs
	}
	return d.Addresses(p)
}

// poison classifies err as invalid input unless it already has a class.
func poison(err error) error {
	var fe *failure.Error
	if errors.As(err, &fe) {
		return err
	}
	return failure.Poisoned(failure.ReasonInvalid, err)
}
