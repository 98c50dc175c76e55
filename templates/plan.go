package templates

import (
	"errors"
	"fmt"
	"slices"
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
	ns, _, err := s.plan(ev, now, PlanOptions{Check: address.Check}, true)
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
	return s.plan(ev, now, PlanOptions{Check: check}, false)
}

// Choices are what a person stored (package prefs) that planning honours
// over the event's preferences field and the category's defaults.
type Choices interface {
	// Allows reports whether the person allows category on ch; decided
	// is false when they stored nothing that says.
	Allows(category string, ch notification.Channel) (allow, decided bool)
	// QuietHours is the person's own quiet window (times only: the
	// category decides which channels have quiet hours); set is false
	// when they chose none.
	QuietHours() (from, to int, set bool)
	// TimeZone is the zone they chose, "" for none.
	TimeZone() string
}

// PlanOptions are PlanWith's inputs besides the event.
type PlanOptions struct {
	// Check vets every address (nil means address.Check).
	Check func(notification.Channel, string) error
	// Choices returns a person's stored choices, nil when none; nil means
	// nobody stored any.
	Choices func(personID string) Choices
	// Lookup, when set, is called once per event with the ids of the
	// people its rules reach (without repeats), once planning has read
	// them and before it decides anything, and returns their Choices; its
	// error is returned as it is. The dispatcher looks people's stored
	// choices up in one round trip this way, without reading the event's
	// people twice (Recipients). It replaces Choices.
	Lookup func(ids []string) (func(personID string) Choices, error)
	// NoQuietHours sends at once what quiet hours would defer
	// (HERALD_QUIET_HOURS=off).
	NoQuietHours bool
}

// PlanWith is PlanChecked with people's stored choices: they decide which
// channels a person gets of each category, and their own quiet hours and
// time zone. Scheduled rules' notifications get DueAt, Deferred and
// CancelKeys; one due inside its quiet hours is deferred to their end.
func (s *Set) PlanWith(ev *events.Event, now time.Time, opts PlanOptions) ([]notification.Notification, []Refusal, error) {
	return s.plan(ev, now, opts, false)
}

func (s *Set) plan(ev *events.Event, now time.Time, opts PlanOptions, sample bool) ([]notification.Notification, []Refusal, error) {
	check := opts.Check
	if check == nil {
		check = address.Check
	}
	t := s.types[ev.Type]
	if t == nil {
		return nil, nil, fmt.Errorf("%w %q", ErrUnknownType, ev.Type)
	}
	// First every rule's recipients (each recipients path read once) and
	// schedule, so that stored choices are looked up once for everybody.
	type ruleWork struct {
		r            *rule
		people       []events.Person
		due, expires time.Time
		keys         []string // cancel_on's: a schedule's, or an unscheduled rule's (for whatever holds its messages)
	}
	var refused []Refusal
	var workArray [8]ruleWork // most event types have fewer rules: no allocation
	work := workArray[:0]
	var byPath map[string][]events.Person
	for _, r := range t.rules {
		var people []events.Person
		if strings.HasPrefix(r.recipients, StaffPrefix) {
			people = s.staffPeople(ev, r.recipients) // none at a location the roster lacks
		} else if ps, ok := byPath[r.recipients]; ok {
			people = ps
		} else {
			if r.optional && !ev.Has(r.recipients) {
				continue
			}
			var err error
			if people, err = ev.People(r.recipients); err != nil {
				return nil, nil, poison(fmt.Errorf("%s recipients %q: %w", r.eventType, r.recipients, err))
			}
			if byPath == nil {
				byPath = map[string][]events.Person{}
			}
			byPath[r.recipients] = people
		}
		w := ruleWork{r: r, people: people}
		if r.schedule != nil {
			d, anchor, err := r.schedule.Due(ev)
			if err != nil {
				refused = s.refuseRule(refused, ev, r, people, failure.Poisoned(failure.ReasonInvalid, err))
				continue
			}
			if !d.After(now) && !anchor.After(now) {
				continue // what it reminds of has passed: nothing to send
			}
			// Due now or already (a booking made less than the offset
			// ahead, a replay) still goes through the scheduler, which
			// knows whether it was cancelled.
			w.due = d
			if r.schedule.Offset <= 0 {
				w.expires = anchor // a reminder is worthless once its class starts
			}
			w.keys = r.schedule.keys(ev)
		}
		if r.held != nil {
			w.keys = r.held.keys(ev)
		}
		if r.expires != nil {
			exp, _, err := r.expires.At(ev, "expires", "expires at")
			if err != nil {
				refused = s.refuseRule(refused, ev, r, people, failure.Poisoned(failure.ReasonInvalid, err))
				continue
			}
			if !exp.After(now) || !w.due.IsZero() && !w.due.Before(exp) {
				continue // it would arrive after its point: nothing to send
			}
			w.expires = exp // the rule's own, over a schedule's class start
		}
		work = append(work, w)
	}
	if opts.Lookup != nil {
		seen := map[string]bool{}
		var ids []string
		for _, w := range work {
			for i := range w.people {
				if id := w.people[i].ID; id != "" && !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
		opts.Choices = nil
		if len(ids) > 0 {
			choices, err := opts.Lookup(ids)
			if err != nil {
				return nil, nil, err
			}
			opts.Choices = choices
		}
	}

	base := eventData(ev)
	// One Data per person, for all of their messages of every rule:
	// nothing changes a planned notification's Data, and rules with the
	// same recipients path share its people (byPath), so a person's Data
	// is found by their address in that slice. Staff are read per rule
	// and get one per rule.
	var datas map[*events.Person]notification.Data
	// Room for one notification per person and channel: a Notification is
	// ~300 bytes, and twice the rules (the room before) was mostly unused.
	size := 0
	for _, w := range work {
		size += len(w.people) * len(w.r.channels)
	}
	out := make([]notification.Notification, 0, size)
	seen := map[string]bool{}
	for _, w := range work {
		r, people, due, expires, keys := w.r, w.people, w.due, w.expires, w.keys
		cat := s.ruleCategory(r)
		for i := range people {
			p := &people[i]
			var ch Choices
			if opts.Choices != nil {
				ch = opts.Choices(p.ID)
			}
			allows := func(c notification.Channel) bool { return allowed(ch, p, cat, c) }
			if cat.Required && len(r.onlyIfUnreachable) == 0 && !slices.ContainsFunc(r.channels, allows) {
				// A required category is never switched off entirely
				// (docs/preferences.md): a person whose choices, or
				// whose event's preferences, turn off every channel
				// this rule sends on (they kept only SMS, which a
				// booking confirmation does not use) still gets it,
				// once, on the first of its channels that reaches
				// them (an outside tester's find).
				if c, ok := s.requiredChannel(ev.Type, p, r.channels, cat, sample); ok {
					allows = func(x notification.Channel) bool { return x == c }
				}
			}
			if s.unreachableElsewhere(ev.Type, p, r.onlyIfUnreachable, check, sample, allows) {
				continue
			}
			locale := p.Locale
			if locale == "" {
				locale = fallbackLocale
			}
			zone, loc := recipientZone(ch, p, ev)
			for _, ch := range r.channels {
				if !allows(ch) {
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
					data, ok := datas[p]
					if !ok {
						if datas == nil {
							datas = make(map[*events.Person]notification.Data, len(people))
						}
						data = recipientData(base, p)
						datas[p] = data
					}
					n := notification.Notification{
						ID:          id,
						EventID:     ev.ID,
						EventType:   ev.Type,
						Template:    r.template,
						Channel:     ch,
						Locale:      locale,
						RecipientID: p.ID,
						To:          to,
						Data:        data,
						Priority:    r.priority,
						CreatedAt:   now,
						Category:    cat.Name,
						TimeZone:    zone,
						CancelKeys:  keys,
					}
					if !due.IsZero() {
						n.DueAt, n.Deferred = due, notification.DeferSchedule
					}
					n.ExpiresAt = expires
					if !opts.NoQuietHours {
						s.quiet(&n, r, cat, choicesOf(opts, p.ID), loc, now)
					}
					out = append(out, n)
				}
			}
		}
	}
	return out, refused, nil
}

// unreachableElsewhere reports whether one of chs can reach p at an address
// check accepts, in which case a fallback rule does not apply to p: a
// member whose only push token is malformed still gets the SMS fallback.
func (s *Set) unreachableElsewhere(eventType string, p *events.Person, chs []notification.Channel, check func(notification.Channel, string) error, sample bool, allows func(notification.Channel) bool) bool {
	for _, ch := range chs {
		if !allows(ch) {
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

// allowed decides whether p gets category cat on ch: what they stored,
// else the event's preferences field, else the category's default.
func allowed(c Choices, p *events.Person, cat *Category, ch notification.Channel) bool {
	if c != nil {
		if v, ok := c.Allows(cat.Name, ch); ok {
			return v
		}
	}
	if v, ok := p.Preferences[string(ch)]; ok {
		return v
	}
	return cat.Default(ch)
}

// requiredChannel is the channel a required category's rule sends on to
// p when p's choices leave it none: the first of chs the category has on
// by default that has an address for p, else the first with one.
func (s *Set) requiredChannel(eventType string, p *events.Person, chs []notification.Channel, cat *Category, sample bool) (notification.Channel, bool) {
	for _, byDefault := range []bool{true, false} {
		for _, c := range chs {
			if (!byDefault || cat.Default(c)) && len(s.addresses(eventType, p, c, sample)) > 0 {
				return c, true
			}
		}
	}
	return "", false
}

func choicesOf(opts PlanOptions, id string) Choices {
	if opts.Choices == nil {
		return nil
	}
	return opts.Choices(id)
}

// recipientZone is where p's quiet hours are counted: the zone they chose,
// else theirs in the event, else the class's, else UTC.
func recipientZone(c Choices, p *events.Person, ev *events.Event) (string, *time.Location) {
	var room [3]string // without allocating
	names := room[:0]
	names = append(names, zoneOf(c), p.TimeZone)
	if tz, ok := ev.Text("class.time_zone"); ok {
		names = append(names, tz)
	}
	return firstZone(names)
}

// firstZone is the first of names that names a zone, UTC when none does.
func firstZone(names []string) (string, *time.Location) {
	for _, n := range names {
		if n == "" {
			continue
		}
		if loc := loadZone(n); loc != nil {
			return n, loc
		}
	}
	return "UTC", time.UTC
}

// QuietWindow is the quiet hours that apply to a notification of rule r
// (category cat) for a person with choices c: the rule's own, else the
// category's, with the person's times when they chose some; nil for none.
func quietWindow(r *rule, cat *Category, c Choices) *Window {
	w := cat.Quiet
	if r.quietSet {
		w = r.quiet
	}
	if w == nil || c == nil {
		return w
	}
	if from, to, set := c.QuietHours(); set {
		if from == to {
			return nil // the person turned quiet hours off
		}
		return &Window{From: from, To: to, Channels: w.Channels}
	}
	return w
}

// QuietEnd is when the quiet hours that hold at, for n, end: those of n's
// rule and category with the person's own times (c; nil when unknown), in
// their chosen zone, else n's. It is the zero time when at is outside them,
// when they do not cover n's channel, or when n has priority high. A
// channel worker asks before it holds a message back for its frequency cap:
// the dispatcher checked quiet hours for the time it planned, not for the
// cap's release.
func (s *Set) QuietEnd(n *notification.Notification, c Choices, at time.Time) time.Time {
	r := s.rules[ruleKey{n.Template, n.Channel}]
	if r == nil {
		return time.Time{}
	}
	w := quietFor(n, r, s.ruleCategory(r), c)
	_, loc := firstZone([]string{zoneOf(c), n.TimeZone})
	if w == nil || !w.Contains(at, loc) {
		return time.Time{}
	}
	return w.End(at, loc)
}

// ruleCategory is r's category; an undeclared one (which lint reports)
// counts as transactional.
func (s *Set) ruleCategory(r *rule) *Category {
	if cat := s.Category(r.category); cat != nil {
		return cat
	}
	return defaultCategories()[Transactional]
}

// quietFor is the quiet hours that may hold n back (quietWindow), nil when
// none cover its channel or it has priority high.
func quietFor(n *notification.Notification, r *rule, cat *Category, c Choices) *Window {
	if n.Priority == notification.High {
		return nil
	}
	if w := quietWindow(r, cat, c); w.Applies(n.Channel) {
		return w
	}
	return nil
}

// zoneOf is the zone the person chose, "" for none or no choices.
func zoneOf(c Choices) string {
	if c == nil {
		return ""
	}
	return c.TimeZone()
}

// quiet defers n to the end of its quiet hours when it is due inside them
// (now, or its schedule's due time). Priority high goes through.
func (s *Set) quiet(n *notification.Notification, r *rule, cat *Category, c Choices, loc *time.Location, now time.Time) {
	w := quietFor(n, r, cat, c)
	if w == nil {
		return
	}
	at := now
	if n.DueAt.After(now) {
		at = n.DueAt
	}
	if !w.Contains(at, loc) {
		return
	}
	end := w.End(at, loc)
	if n.ExpiresAt.IsZero() || end.Before(n.ExpiresAt) {
		n.DueAt, n.Deferred = end, notification.DeferQuietHours
		return
	}
	// The end of the window is too late (a reminder of a class that
	// starts before it): send it just before the window begins, or at
	// once when that has passed (the person is awake: they just booked).
	if before := w.Start(at, loc).Add(-time.Minute); before.After(now) {
		n.DueAt, n.Deferred = before, notification.DeferQuietHours
	} else {
		n.DueAt = now
	}
}

// refuseRule refuses every message of rule r to people for cause: the
// rule cannot be planned for this event (a schedule whose time is
// missing), which costs no other rule's messages.
func (s *Set) refuseRule(refused []Refusal, ev *events.Event, r *rule, people []events.Person, cause error) []Refusal {
	for i := range people {
		for _, ch := range r.channels {
			refused = append(refused, Refusal{EventID: ev.ID, EventType: ev.Type, Template: r.template,
				Channel: ch, RecipientID: people[i].ID, Err: cause})
		}
	}
	return refused
}
