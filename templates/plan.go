package templates

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// Plan turns a decoded event into its notifications, in routing order: for
// each rule, its recipients (in data order), each channel the rule sends on
// that the person allows and has an address for — one notification per
// push token. A rule with only_if_unreachable skips people whom one of
// those channels can reach (they allow it and have an address on it).
//
// Plan is deterministic: the same event yields the same notification IDs,
// whatever now is. It returns an error wrapping ErrUnknownType for a type
// the set does not route, and a poison error (failure.ReasonInvalid) when
// the event lacks the recipients its routing requires.
func (s *Set) Plan(ev *events.Event, now time.Time) ([]notification.Notification, error) {
	t := s.types[ev.Type]
	if t == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, ev.Type)
	}
	base := eventData(ev)
	out := make([]notification.Notification, 0, 2*len(t.rules))
	seen := map[string]bool{}
	for _, r := range t.rules {
		if r.optional && !ev.Has(r.recipients) {
			continue
		}
		people, err := ev.People(r.recipients)
		if err != nil {
			return nil, poison(fmt.Errorf("%s recipients %q: %w", r.eventType, r.recipients, err))
		}
		for i := range people {
			p := &people[i]
			if unreachableElsewhere(p, r.onlyIfUnreachable) {
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
				for _, to := range addresses(p, ch) {
					id := notification.NewID(ev.ID, r.template, ch, p.ID, to)
					if seen[id] {
						continue // a person listed twice is notified once
					}
					seen[id] = true
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
	return out, nil
}

// unreachableElsewhere reports whether one of chs can reach p, in which
// case a fallback rule does not apply to p.
func unreachableElsewhere(p *events.Person, chs []notification.Channel) bool {
	for _, ch := range chs {
		if p.Allows(string(ch)) && len(addresses(p, ch)) > 0 {
			return true
		}
	}
	return false
}

// addresses returns where p can be reached on ch: their email, their phone,
// or each distinct push token.
func addresses(p *events.Person, ch notification.Channel) []string {
	var one string
	switch ch {
	case notification.Email:
		one = strings.TrimSpace(p.Email)
	case notification.SMS:
		one = strings.TrimSpace(p.Phone)
	case notification.Push:
		switch len(p.PushTokens) {
		case 0:
			return nil
		case 1:
			if p.PushTokens[0] == "" {
				return nil
			}
			return p.PushTokens
		}
		out := make([]string, 0, len(p.PushTokens))
		for _, t := range p.PushTokens {
			if t != "" && !contains(out, t) {
				out = append(out, t)
			}
		}
		return out
	}
	if one == "" {
		return nil
	}
	return []string{one}
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// poison classifies err as invalid input unless it already has a class.
func poison(err error) error {
	var fe *failure.Error
	if errors.As(err, &fe) {
		return err
	}
	return failure.Poisoned(failure.ReasonInvalid, err)
}
