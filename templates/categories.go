package templates

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gymhq/herald/notification"
)

// CategoriesFile declares the tree's notification categories, at the top
// of the template tree beside staff.yaml, checked and hot-reloaded with the
// templates (docs/templates.md, "Categories"). Every rule of routing.yaml
// names one (category:, default Transactional); a person's preferences,
// quiet hours and frequency caps are per category.
const CategoriesFile = "categories.yaml"

// Transactional is the category of a rule that names none, and of
// notifications written before categories existed.
const Transactional = "transactional"

// Category is one declared category.
type Category struct {
	Name        string
	Description string
	// Required categories cannot be switched off entirely: a person may
	// move them between channels, but a preference that leaves none of
	// the channels on is refused. One-click unsubscribe never applies.
	Required bool
	// Defaults are the channels' default state for a person who stored no
	// preference; an absent channel is on.
	Defaults map[notification.Channel]bool
	// Quiet is the category's quiet hours; nil means none.
	Quiet *Window
	// Caps are its frequency caps, at most one per channel.
	Caps []Cap
}

// Default reports whether ch is on by default in c.
func (c *Category) Default(ch notification.Channel) bool {
	v, ok := c.Defaults[ch]
	return !ok || v
}

// Cap returns c's cap on ch, nil when it has none.
func (c *Category) Cap(ch notification.Channel) *Cap {
	for i := range c.Caps {
		if c.Caps[i].Channel == ch {
			return &c.Caps[i]
		}
	}
	return nil
}

// Window is a daily quiet window in the recipient's own time zone, on some
// channels: From and To are minutes after local midnight; From > To spans
// midnight (22:00–07:00).
type Window struct {
	From, To int
	Channels []notification.Channel
}

// DefaultQuietHours is the window of a category that declares none.
func DefaultQuietHours() *Window {
	return &Window{From: 22 * 60, To: 7 * 60, Channels: []notification.Channel{notification.Push, notification.SMS}}
}

// Applies reports whether the window covers ch.
func (w *Window) Applies(ch notification.Channel) bool {
	if w == nil {
		return false
	}
	for _, c := range w.Channels {
		if c == ch {
			return true
		}
	}
	return false
}

// Contains reports whether t, in loc, falls inside the window.
func (w *Window) Contains(t time.Time, loc *time.Location) bool {
	if w == nil || w.From == w.To {
		return false
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	if w.From < w.To {
		return m >= w.From && m < w.To
	}
	return m >= w.From || m < w.To
}

// End returns when the window that contains t ends, in loc: the first
// instant after t at which the local clock reads To or later.
func (w *Window) End(t time.Time, loc *time.Location) time.Time {
	lt := t.In(loc)
	end := wallTime(lt.Year(), lt.Month(), lt.Day(), w.To, loc)
	if !end.After(t) {
		end = wallTime(lt.Year(), lt.Month(), lt.Day()+1, w.To, loc)
	}
	return end
}

// Start returns when the window that contains t began, in loc: the last
// local From at or before t.
func (w *Window) Start(t time.Time, loc *time.Location) time.Time {
	lt := t.In(loc)
	start := wallTime(lt.Year(), lt.Month(), lt.Day(), w.From, loc)
	if start.After(t) {
		start = wallTime(lt.Year(), lt.Month(), lt.Day()-1, w.From, loc)
	}
	return start
}

// wallTime is the first instant at which the clock in loc reads minute
// (of the day) on that day, or a later time. On most days that is
// time.Date's answer. When a daylight-saving jump skips the minute,
// time.Date picks an instant whose clock reads another time, earlier in
// zones west of UTC (02:30 in New York on the day clocks go from 02:00 to
// 03:00 becomes 01:30 EST, still inside quiet hours that end at 02:30) and
// later in zones east of it: the answer is then the jump itself, when the
// clock passes the minute (03:00 EDT).
func wallTime(year int, month time.Month, day, minute int, loc *time.Location) time.Time {
	t := time.Date(year, month, day, minute/60, minute%60, 0, 0, loc)
	want := time.Date(year, month, day, minute/60, minute%60, 0, 0, time.UTC)
	got := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	switch {
	case got.Equal(want):
		return t
	case got.After(want): // moved past the jump: the jump is where its zone starts
		if start, _ := t.ZoneBounds(); !start.IsZero() {
			return start
		}
	default: // moved before the jump: the jump is where its zone ends
		if _, end := t.ZoneBounds(); !end.IsZero() {
			return end
		}
	}
	return t
}

// String is the window as written: "22:00-07:00 on push, sms".
func (w *Window) String() string {
	if w == nil {
		return "off"
	}
	names := make([]string, len(w.Channels))
	for i, c := range w.Channels {
		names[i] = string(c)
	}
	return fmt.Sprintf("%s-%s on %s", clock(w.From), clock(w.To), strings.Join(names, ", "))
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// ParseClock reads "HH:MM" (24-hour) as minutes after midnight.
func ParseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(h) != 2 || len(m) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q is not a time of day HH:MM (00:00 to 23:59)", s)
	}
	return hh*60 + mm, nil
}

// Cap is a frequency cap: at most Max notifications of the category on
// Channel to one person per Per, fleet-wide. Over it, Policy says what
// happens: CapDefer waits until the cap allows one more, CapDrop gives the
// durable outcome capped.
type Cap struct {
	Channel notification.Channel
	Max     int
	Per     time.Duration
	Policy  string
}

// Cap policies.
const (
	CapDefer = "defer"
	CapDrop  = "drop"
)

type categoriesYAML struct {
	Categories map[string]categoryYAML `yaml:"categories"`
}

type categoryYAML struct {
	Description string          `yaml:"description"`
	Required    bool            `yaml:"required"`
	Channels    map[string]bool `yaml:"channels"`
	QuietHours  *quietYAML      `yaml:"quiet_hours"`
	Caps        []capYAML       `yaml:"caps"`
}

// quietYAML is "off", or {from, to, channels}.
type quietYAML struct {
	Off      bool
	From     string      `yaml:"from"`
	To       string      `yaml:"to"`
	Channels channelList `yaml:"channels"`
}

func (q *quietYAML) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "off" || n.Value == "false" || n.Value == "none" {
			q.Off = true
			return nil
		}
		return fmt.Errorf("line %d: quiet_hours is %q; want off or {from: \"22:00\", to: \"07:00\", channels: [push, sms]}", n.Line, n.Value)
	}
	type plain quietYAML
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*q = quietYAML(p)
	return nil
}

type capYAML struct {
	Channel string `yaml:"channel"`
	Max     int    `yaml:"max"`
	Per     string `yaml:"per"`
	Policy  string `yaml:"policy"`
}

var categoryNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// defaultCategories are a tree's categories when it has no
// categories.yaml: transactional alone, without quiet hours.
func defaultCategories() map[string]*Category {
	return map[string]*Category{Transactional: {Name: Transactional, Required: true,
		Description: "What a person did or must know now."}}
}

// catProblem is one problem of categories.yaml, at its line (0 unknown).
type catProblem struct {
	line int
	msg  string
}

// loadCategories reads categories.yaml; a tree without one has
// defaultCategories, and found is false.
func loadCategories(fsys fs.FS) (cats map[string]*Category, found bool, probs []catProblem) {
	b, err := fs.ReadFile(fsys, CategoriesFile)
	if errors.Is(err, fs.ErrNotExist) {
		return defaultCategories(), false, nil
	}
	if err != nil {
		return nil, true, []catProblem{{0, err.Error()}}
	}
	cats, probs = parseCategories(b)
	return cats, true, probs
}

// parseCategories parses and validates categories.yaml. Each problem is
// at the line of the category (or cap) it is about.
func parseCategories(b []byte) (map[string]*Category, []catProblem) {
	var f categoriesYAML
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, []catProblem{{0, "is empty; want categories: {<name>: {description, required, channels, quiet_hours, caps}}"}}
		}
		return nil, []catProblem{{yamlLine(err), yamlError(err)}}
	}
	if len(f.Categories) == 0 {
		return nil, []catProblem{{0, "declares no categories"}}
	}
	lines, capLines := categoryLines(b)
	out := map[string]*Category{}
	var probs []catProblem
	names := make([]string, 0, len(f.Categories))
	for name := range f.Categories {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cy := f.Categories[name]
		bad := func(line int, format string, args ...any) {
			if line == 0 {
				line = lines[name]
			}
			probs = append(probs, catProblem{line, fmt.Sprintf("category %s: %s", name, fmt.Sprintf(format, args...))})
		}
		if !categoryNameRE.MatchString(name) {
			bad(0, "name must be lower-case letters, digits and _, starting with a letter")
		}
		c := &Category{Name: name, Description: cy.Description, Required: cy.Required, Defaults: map[notification.Channel]bool{}}
		if strings.TrimSpace(cy.Description) == "" {
			bad(0, "description is missing; say what the category is for, it is shown to people in the preference centre")
		}
		for ch, on := range cy.Channels {
			if !notification.Channel(ch).Valid() {
				bad(0, "channels: %q is not one of %s", ch, notification.Names())
				continue
			}
			c.Defaults[notification.Channel(ch)] = on
		}
		if c.Required {
			anyOn := false
			for _, ch := range notification.Known() {
				anyOn = anyOn || c.Default(ch)
			}
			if !anyOn {
				bad(0, "is required but every channel is off by default")
			}
		}
		switch q := cy.QuietHours; {
		case q == nil:
			c.Quiet = DefaultQuietHours()
		case q.Off:
		default:
			w, err := parseWindow(q)
			if err != nil {
				bad(0, "quiet_hours: %v", err)
			}
			c.Quiet = w
		}
		seen := map[notification.Channel]bool{}
		for i, cp := range cy.Caps {
			line := 0
			if i < len(capLines[name]) {
				line = capLines[name][i]
			}
			cap, err := parseCap(cp)
			if err != nil {
				bad(line, "caps[%d]: %v", i, err)
				continue
			}
			if seen[cap.Channel] {
				bad(line, "caps[%d]: channel %s is capped twice", i, cap.Channel)
			}
			seen[cap.Channel] = true
			c.Caps = append(c.Caps, cap)
		}
		out[name] = c
	}
	if _, ok := out[Transactional]; !ok {
		probs = append(probs, catProblem{0, "category transactional is missing: rules without category: are transactional"})
	} else if !out[Transactional].Required {
		probs = append(probs, catProblem{lines[Transactional], "category transactional must be required: true (it cannot be switched off entirely)"})
	}
	return out, probs
}

// categoryLines returns the line of each category's name and of each of
// its caps.
func categoryLines(b []byte) (map[string]int, map[string][]int) {
	lines, caps := map[string]int{}, map[string][]int{}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return lines, caps
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "categories" {
			continue
		}
		cats := top.Content[i+1]
		for j := 0; j+1 < len(cats.Content); j += 2 {
			name := cats.Content[j].Value
			lines[name] = cats.Content[j].Line
			body := cats.Content[j+1]
			for k := 0; k+1 < len(body.Content); k += 2 {
				if body.Content[k].Value == "caps" {
					for _, c := range body.Content[k+1].Content {
						caps[name] = append(caps[name], c.Line)
					}
				}
			}
		}
	}
	return lines, caps
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// yamlLine is the first line a yaml.v3 error names, 0 for none.
func yamlLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func parseWindow(q *quietYAML) (*Window, error) {
	from, err := ParseClock(q.From)
	if err != nil {
		return nil, fmt.Errorf("from: %v", err)
	}
	to, err := ParseClock(q.To)
	if err != nil {
		return nil, fmt.Errorf("to: %v", err)
	}
	if from == to {
		return nil, fmt.Errorf("from and to are both %s; write quiet_hours: off for none", q.From)
	}
	w := &Window{From: from, To: to}
	if len(q.Channels) == 0 {
		w.Channels = DefaultQuietHours().Channels
	}
	for _, c := range q.Channels {
		ch := notification.Channel(c)
		if !ch.Valid() {
			return nil, fmt.Errorf("channel %q is not one of %s", c, notification.Names())
		}
		w.Channels = append(w.Channels, ch)
	}
	return w, nil
}

func parseCap(cy capYAML) (Cap, error) {
	c := Cap{Channel: notification.Channel(cy.Channel), Max: cy.Max, Policy: cy.Policy}
	if !c.Channel.Valid() {
		return c, fmt.Errorf("channel %q is not one of %s", cy.Channel, notification.Names())
	}
	if c.Max <= 0 {
		return c, fmt.Errorf("max %d: a cap of zero or less sends nothing at all; turn the channel off in channels: instead", c.Max)
	}
	per, err := time.ParseDuration(cy.Per)
	if err != nil || per < time.Minute || per > 31*24*time.Hour {
		return c, fmt.Errorf("per %q is not a duration from 1m to 744h (e.g. 1h, 24h)", cy.Per)
	}
	c.Per = per
	switch c.Policy {
	case "":
		c.Policy = CapDefer
	case CapDefer, CapDrop:
	default:
		return c, fmt.Errorf("policy %q is not defer or drop", c.Policy)
	}
	return c, nil
}

// Category returns the category named name, nil when the tree declares
// none by that name. An empty name is Transactional.
func (s *Set) Category(name string) *Category {
	if s == nil {
		return nil
	}
	if name == "" {
		name = Transactional
	}
	return s.categories[name]
}

// Categories returns the tree's categories, sorted by name.
func (s *Set) Categories() []*Category {
	if s == nil {
		return nil
	}
	out := make([]*Category, 0, len(s.categories))
	for _, c := range s.categories {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Set) categoryNames() []string {
	out := make([]string, 0, len(s.categories))
	for n := range s.categories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
