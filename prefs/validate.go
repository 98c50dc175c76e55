package prefs

import (
	"sort"

	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

// Validate checks the names in patch against set: every channel must be
// one a person chooses between (Channels) and every category one set
// declares. The error names the first field that is not, in a stable
// order.
func (patch *Patch) Validate(set *templates.Set) error {
	if err := checkChannels(patch.Channels, "channels"); err != nil {
		return err
	}
	for _, cat := range sortedKeys(patch.Categories) {
		if err := checkCategory(set, cat); err != nil {
			return err
		}
		if err := checkChannels(patch.Categories[cat], path("categories", cat)); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks p against set: every channel and category it names must
// exist (ErrInvalid), and every required category must stay on for at
// least one channel, counting the channel-wide choices and the category's
// defaults (ErrRequired). Change checks a patch's names and the required
// rule only, so that choices kept for a category no longer declared do
// not block a person's next change.
func (p *Prefs) Validate(set *templates.Set) error {
	if err := checkChannels(p.Channels, "channels"); err != nil {
		return err
	}
	for _, cat := range sortedKeys(p.Categories) {
		if err := checkCategory(set, cat); err != nil {
			return err
		}
		if err := checkChannels(p.Categories[cat], path("categories", cat)); err != nil {
			return err
		}
	}
	return p.keepsRequired(set)
}

// keepsRequired is the required rule: a required category keeps a channel.
func (p *Prefs) keepsRequired(set *templates.Set) error {
	chs := Channels()
	for _, c := range set.Categories() {
		if !c.Required {
			continue
		}
		on := false
		for _, ch := range chs {
			on = on || p.effective(c, ch)
		}
		if !on {
			return &Error{Field: path("categories", c.Name), required: true,
				Text: c.Name + " cannot be switched off entirely; keep at least one channel"}
		}
	}
	return nil
}

// effective is whether p gets category c on ch as far as the stored
// choices and the defaults say: the stored category choice, else the
// stored channel-wide one, else the category's default. (The dispatcher
// also has the event's preferences field between the last two.)
func (p *Prefs) effective(c *templates.Category, ch notification.Channel) bool {
	if v, ok := p.Allows(c.Name, ch); ok {
		return v
	}
	return c.Default(ch)
}

func checkCategory(set *templates.Set, cat string) error {
	if set.Category(cat) == nil {
		names := make([]string, 0)
		for _, c := range set.Categories() {
			names = append(names, c.Name)
		}
		return invalid(path("categories", cat), "is not a category (%s)", joinNames(names))
	}
	return nil
}

func checkChannels[V any](m map[notification.Channel]V, field string) error {
	for _, ch := range sortedKeys(m) {
		if !choosable(ch) {
			return invalid(path(field, string(ch)), "is not a channel you can choose (%s)", channelList())
		}
	}
	return nil
}

// View is what GET and PUT /v1/preferences answer: the effective choice
// for every channel and for every declared category on every channel, so
// that a preference centre can show each switch as it stands.
type View struct {
	// Channels is each channel's channel-wide choice, true where none is
	// stored.
	Channels map[notification.Channel]bool `json:"channels"`
	// Categories is, per declared category and channel, the stored
	// category choice, else the stored channel-wide one, else the
	// category's default.
	Categories map[string]map[notification.Channel]bool `json:"categories"`
	// Required lists the categories that cannot be switched off entirely.
	Required []string `json:"required"`
	// Descriptions are the categories' descriptions, for the preference
	// centre to show beside their switches.
	Descriptions map[string]string `json:"descriptions"`
	// QuietHours and TimeZone are the person's own, when they chose any.
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	TimeZone   string      `json:"time_zone,omitempty"`
}

// NewView is p as set's categories make it; nil p is a person with no
// stored preference, who gets the defaults.
func NewView(p *Prefs, set *templates.Set) *View {
	if p == nil {
		p = &Prefs{}
	}
	chs := Channels()
	v := &View{
		Channels:     make(map[notification.Channel]bool, len(chs)),
		Categories:   map[string]map[notification.Channel]bool{},
		Required:     []string{},
		Descriptions: map[string]string{},
		QuietHours:   p.Quiet,
		TimeZone:     p.Zone,
	}
	for _, ch := range chs {
		on, ok := p.Channels[ch]
		v.Channels[ch] = on || !ok
	}
	for _, c := range set.Categories() {
		m := make(map[notification.Channel]bool, len(chs))
		for _, ch := range chs {
			m[ch] = p.effective(c, ch)
		}
		v.Categories[c.Name] = m
		v.Descriptions[c.Name] = c.Description
		if c.Required {
			v.Required = append(v.Required, c.Name)
		}
	}
	return v
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func joinNames(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}
