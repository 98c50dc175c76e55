// Package prefs is what people chose about the notifications they get: per
// channel, per category and channel, their quiet hours and their time
// zone. The dispatcher reads it on its hot path (Store.Lookup, coalesced)
// and plans with it (templates.Choices); people change it through the
// gateway (GET|PUT /v1/preferences), one-click unsubscribe links, SMS STOP
// replies and `herald preferences`.
//
// Resolution, for a person, a category and a channel: what they stored for
// the category and channel, else what they stored for the channel, else
// the event's preferences field (the booking service's default), else the
// category's default (templates/categories.yaml). A required category can
// be moved between channels but never switched off entirely: a change that
// would leave it no channel is refused (ErrRequired).
//
// This package must never lose an opt-out: preferences do not expire, a
// change is an atomic read-modify-write of the person's whole record, and
// choices for a category no longer declared are kept (not shown, not
// enforced), so that a category removed by mistake and restored keeps what
// people said about it.
package prefs

import (
	"context"
	"fmt"
	"regexp"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

// Prefs is one person's stored choices. Its JSON is the body of
// PUT /v1/preferences without nulls:
//
//	{"channels":{"email":true,"sms":false},
//	 "categories":{"marketing":{"email":false}},
//	 "quiet_hours":{"from":"23:00","to":"06:30"},
//	 "time_zone":"Europe/London"}
//
// Channels apply to every category; Categories refine one. An absent key
// is no choice. The zero value (and nil) has none.
type Prefs struct {
	Channels   map[notification.Channel]bool            `json:"channels,omitempty"`
	Categories map[string]map[notification.Channel]bool `json:"categories,omitempty"`
	// Quiet is the person's own quiet hours (the category still decides
	// which channels have any); nil is no choice.
	Quiet *QuietHours `json:"quiet_hours,omitempty"`
	// Zone is their IANA time zone, for quiet hours; "" is no choice.
	Zone string `json:"time_zone,omitempty"`
}

var _ templates.Choices = (*Prefs)(nil)

// Allows implements templates.Choices: the stored choice for category on
// ch, else for ch; decided is false when neither is stored.
func (p *Prefs) Allows(category string, ch notification.Channel) (allow, decided bool) {
	if p == nil {
		return false, false
	}
	if category == "" {
		category = templates.Transactional
	}
	if v, ok := p.Categories[category][ch]; ok {
		return v, true
	}
	if v, ok := p.Channels[ch]; ok {
		return v, true
	}
	return false, false
}

// QuietHours implements templates.Choices; "off" is from == to.
func (p *Prefs) QuietHours() (from, to int, set bool) {
	if p == nil || p.Quiet == nil {
		return 0, 0, false
	}
	if p.Quiet.Off {
		return 0, 0, true
	}
	return p.Quiet.From, p.Quiet.To, true
}

// TimeZone implements templates.Choices.
func (p *Prefs) TimeZone() string {
	if p == nil {
		return ""
	}
	return p.Zone
}

// Empty reports whether p holds no choice at all (the store then keeps no
// record).
func (p *Prefs) Empty() bool {
	return p == nil || len(p.Channels) == 0 && len(p.Categories) == 0 && p.Quiet == nil && p.Zone == ""
}

// set records one choice for category ("" for every category) on ch.
func (p *Prefs) set(category string, ch notification.Channel, on bool) {
	if category == "" {
		if p.Channels == nil {
			p.Channels = map[notification.Channel]bool{}
		}
		p.Channels[ch] = on
		return
	}
	if p.Categories == nil {
		p.Categories = map[string]map[notification.Channel]bool{}
	}
	if p.Categories[category] == nil {
		p.Categories[category] = map[notification.Channel]bool{}
	}
	p.Categories[category][ch] = on
}

// Patch is a change to a person's preferences, as PUT /v1/preferences and
// `herald preferences set` take it (DecodePatch): it names what changes,
// and a JSON null removes a stored choice, so that the category default
// (or the channel-wide choice) applies again.
type Patch struct {
	// ResetChannels ("channels": null) removes every channel-wide choice
	// before Channels apply; ResetCategories ("categories": null) every
	// category's.
	ResetChannels, ResetCategories bool
	// Channels sets (true, false) or removes (nil) channel-wide choices.
	Channels map[notification.Channel]*bool
	// Categories sets or removes one category's choices per channel; a
	// nil map ("marketing": null) removes all of that category's.
	Categories map[string]map[notification.Channel]*bool
	// QuietSet says the patch names quiet_hours: Quiet replaces the
	// stored ones, nil removes them.
	QuietSet bool
	Quiet    *QuietHours
	// ZoneSet says the patch names time_zone: Zone replaces the stored
	// one, "" removes it.
	ZoneSet bool
	Zone    string
}

// Merge applies patch to p: what the patch names changes, the rest stays.
// It does not validate; Change does, before and after.
func (p *Prefs) Merge(patch *Patch) {
	if patch.ResetChannels {
		p.Channels = nil
	}
	if patch.ResetCategories {
		p.Categories = nil
	}
	for ch, v := range patch.Channels {
		if v == nil {
			delete(p.Channels, ch)
			continue
		}
		p.set("", ch, *v)
	}
	for cat, m := range patch.Categories {
		if m == nil {
			delete(p.Categories, cat)
			continue
		}
		for ch, v := range m {
			if v == nil {
				delete(p.Categories[cat], ch)
				continue
			}
			p.set(cat, ch, *v)
		}
		if len(p.Categories[cat]) == 0 {
			delete(p.Categories, cat)
		}
	}
	if patch.QuietSet {
		p.Quiet = nil
		if patch.Quiet != nil {
			q := *patch.Quiet
			p.Quiet = &q
		}
	}
	if patch.ZoneSet {
		p.Zone = patch.Zone
	}
	p.tidy()
}

// tidy drops empty maps, so that a record with no choice left is Empty.
func (p *Prefs) tidy() {
	if len(p.Channels) == 0 {
		p.Channels = nil
	}
	for cat, m := range p.Categories {
		if len(m) == 0 {
			delete(p.Categories, cat)
		}
	}
	if len(p.Categories) == 0 {
		p.Categories = nil
	}
}

// Channels are the channels a person chooses between: every registered
// channel that reaches people at addresses of their own (a descriptor with
// Addresses), in registration order. A channel whose addresses are
// subscriptions (webhook: partners' endpoints) is not a person's to switch
// off, and so is neither shown nor accepted.
func Channels() []notification.Channel {
	var out []notification.Channel
	for _, d := range channels.All() {
		if d.Addresses != nil {
			out = append(out, d.Name)
		}
	}
	return out
}

func choosable(ch notification.Channel) bool {
	for _, c := range Channels() {
		if c == ch {
			return true
		}
	}
	return false
}

// personRE is what a person id may be: the JWT sub the gateway accepts
// (gateway/jwtauth), the same rule as a feed's (feed.CheckPerson).
var personRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$`)

// CheckPerson reports whether id can have preferences.
func CheckPerson(id string) error {
	if !personRE.MatchString(id) {
		return &Error{Field: "person", Text: "not a person id (1-128 of A-Z a-z 0-9 _ . : @ -, starting with a letter or digit)"}
	}
	return nil
}

// Change applies patch to person's preferences in store, atomically: the
// names in the patch are checked against set (400), the patch is merged
// into what is stored, and the result must keep every required category
// on some channel (ErrRequired, 422). It returns what is stored after.
func Change(ctx context.Context, store Store, set *templates.Set, person string, patch *Patch) (*Prefs, error) {
	if err := patch.Validate(set); err != nil {
		return nil, err
	}
	return store.Update(ctx, person, func(p *Prefs) error {
		// Only a change that switches a required category off is refused:
		// one already off (an SMS STOP left it no channel) does not lock
		// the person out of every other change.
		wasOff := p.keepsRequired(set) != nil
		p.Merge(patch)
		if err := p.keepsRequired(set); err != nil && !wasOff {
			return err
		}
		return nil
	})
}

// OptOut switches ch off for person in every category: an SMS STOP reply
// (Twilio 21610, failure.ReasonUnsubscribed) or any opt-out the provider
// reports for the person rather than an address. A category-level choice
// of ch is removed with it, so that no category keeps sending on ch. It
// holds even when it leaves a required category no channel: the provider
// refuses those messages anyway, and the person said so.
func OptOut(ctx context.Context, store Store, person string, ch notification.Channel) (*Prefs, error) {
	if !ch.Valid() {
		return nil, &Error{Field: "channel", Text: fmt.Sprintf("%q is not a channel (%s)", ch, notification.Names())}
	}
	return store.Update(ctx, person, func(p *Prefs) error {
		for cat := range p.Categories {
			delete(p.Categories[cat], ch)
		}
		p.set("", ch, false)
		p.tidy()
		return nil
	})
}

// Unsubscribe switches category off on ch for person: a one-click
// unsubscribe link. The caller refuses required categories (the link is
// never offered for one, and a token naming one is refused).
func Unsubscribe(ctx context.Context, store Store, person, category string, ch notification.Channel) (*Prefs, error) {
	return store.Update(ctx, person, func(p *Prefs) error {
		p.set(category, ch, false)
		return nil
	})
}

// PlanChoices adapts store to the dispatcher's Planner.Choices: one
// Lookup for an event's recipients, each person who stored something as
// their templates.Choices, nobody else in the map.
func PlanChoices(store Store) func(ctx context.Context, ids []string) (map[string]templates.Choices, error) {
	return func(ctx context.Context, ids []string) (map[string]templates.Choices, error) {
		m, err := store.Lookup(ctx, ids)
		if err != nil || len(m) == 0 {
			return nil, err // nobody stored any: a nil map reads as none
		}
		out := make(map[string]templates.Choices, len(m))
		for id, p := range m {
			out[id] = p
		}
		return out, nil
	}
}
