package templates

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
)

// Schedule is a rule's schedule (routing.yaml schedule:): its notifications
// are due at a time in the event's data plus an offset, and withdrawn when
// an event cancel_on names arrives with the same value at its match path.
type Schedule struct {
	// TimeRef is when: a time in the event's data plus an offset.
	TimeRef
	// CancelOn are the events that withdraw it.
	CancelOn []CancelRule
	// Replace is the dot path whose value names what one event schedules
	// under the rule (routing.yaml schedule: replace:, e.g. booking_id):
	// a later event of the rule's type with the same value there replaces
	// it (a class moved, the booking confirmed again with its new time).
	// Empty: every event's notifications wait on their own.
	Replace  string
	template string
}

// CancelRule withdraws a scheduled notification: an event of type Event
// whose data has at Match the value the scheduling event has there.
type CancelRule struct {
	Event string
	Match string
}

// MaxScheduleAhead bounds how far ahead a notification may be scheduled:
// the schedule topic keeps its records for HERALD_SCHEDULE_RETENTION, which
// must outlast it (docs/scheduling.md).
const MaxScheduleAhead = 90 * 24 * time.Hour

// TimeRef is a time relative to one in an event's data, as routing.yaml
// writes it: "class.starts_at - 2h" (schedule send:, expires:).
type TimeRef struct {
	// Path is the dot path of an RFC 3339 time in the event's data.
	Path string
	// Offset is added to it: -2h is two hours before.
	Offset time.Duration
}

var timeRefRE = regexp.MustCompile(`^\s*([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\s*(?:([+-])\s*([0-9][0-9a-z.]*))?\s*$`)

// parseTimeRef parses the value v of routing.yaml field field.
func parseTimeRef(field, v string) (*TimeRef, error) {
	m := timeRefRE.FindStringSubmatch(v)
	if m == nil {
		return nil, fmt.Errorf("%s %q is not \"<data path> [+|- <duration>]\", e.g. \"class.starts_at - 2h\"", field, v)
	}
	ref := &TimeRef{Path: m[1]}
	if m[3] != "" {
		d, err := time.ParseDuration(m[3])
		if err != nil || d > MaxScheduleAhead {
			return nil, fmt.Errorf("%s %q: %q is not a duration up to %v (e.g. 2h, 30m)", field, v, m[3], MaxScheduleAhead)
		}
		if m[2] == "-" {
			d = -d
		}
		ref.Offset = d
	}
	return ref, nil
}

func parseSchedule(template string, f *scheduleFile) (*Schedule, error) {
	ref, err := parseTimeRef("send", f.Send)
	if err != nil {
		return nil, err
	}
	sc := &Schedule{TimeRef: *ref, template: template}
	if sc.CancelOn, err = parseCancelOn(f.CancelOn); err != nil {
		return nil, err
	}
	if f.Replace != "" {
		if !pathRE.MatchString(f.Replace) {
			return nil, fmt.Errorf("replace %q is not a dot path into the event's data, e.g. booking_id", f.Replace)
		}
		sc.Replace = f.Replace
		n := len(sc.CancelOn) + 1
		for _, c := range sc.CancelOn {
			if c.Match == f.Replace {
				n-- // the same key: a cancel_on matching on the same path
				break
			}
		}
		if n > notification.MaxCancelKeys {
			return nil, fmt.Errorf("cancel_on and replace make %d keys, at most %d: each is a key every message carries", n, notification.MaxCancelKeys)
		}
	}
	return sc, nil
}

// parseCancelOn reads a cancel_on list: a schedule's, or an unscheduled
// rule's (whatever holds its messages is withdrawn too).
func parseCancelOn(fs []cancelFile) ([]CancelRule, error) {
	if len(fs) > notification.MaxCancelKeys {
		return nil, fmt.Errorf("cancel_on lists %d cancellations, at most %d: each is a cancel key every message carries", len(fs), notification.MaxCancelKeys)
	}
	var out []CancelRule
	seen := map[CancelRule]bool{}
	for i, c := range fs {
		cr := CancelRule{Event: c.Event, Match: c.Match}
		switch {
		case !eventTypeRE.MatchString(cr.Event):
			return nil, fmt.Errorf("cancel_on[%d]: event %q is not an event type", i, cr.Event)
		case !pathRE.MatchString(cr.Match):
			return nil, fmt.Errorf("cancel_on[%d]: match %q is not a dot path into both events' data, e.g. booking_id", i, cr.Match)
		case seen[cr]:
			return nil, fmt.Errorf("cancel_on[%d] repeats an earlier one", i)
		}
		seen[cr] = true
		out = append(out, cr)
	}
	return out, nil
}

// String is the time as written.
func (t *TimeRef) String() string {
	switch {
	case t.Offset < 0:
		return t.Path + " - " + (-t.Offset).String()
	case t.Offset > 0:
		return t.Path + " + " + t.Offset.String()
	}
	return t.Path
}

// At returns the time t names in ev and the data's time it is relative to
// (anchor); an error when ev has no RFC 3339 time at the path, beginning
// with field and saying what the rule does at t ("sends", "expires at").
func (t *TimeRef) At(ev *events.Event, field, does string) (at, anchor time.Time, err error) {
	v, ok := ev.Text(t.Path)
	if !ok {
		return time.Time{}, time.Time{}, fmt.Errorf("%s: data.%s is missing; the rule %s %s", field, t.Path, does, t)
	}
	anchor, err = time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("%s: data.%s is not an RFC 3339 time", field, t.Path)
	}
	return anchor.Add(t.Offset), anchor, nil
}

// Due returns when ev's notification is due and the time it is relative
// to (anchor); an error when ev has no RFC 3339 time at the path.
func (sc *Schedule) Due(ev *events.Event) (due, anchor time.Time, err error) {
	return sc.At(ev, "schedule", "sends")
}

// keys returns the cancel keys of ev's notification under sc: one per
// cancel rule whose match path ev has, and its replace key when no cancel
// rule's is the same. An event without a time cannot be ordered, so it must
// not be replaced: where its replace key would be a cancel key, it carries
// that cancel key's untimed form (UntimedKey) instead, which cancellations
// withdraw (Set.Cancels) and replacements never name.
func (sc *Schedule) keys(ev *events.Event) []string {
	var out []string
	untimed := ev.Time.IsZero()
	for _, c := range sc.CancelOn {
		if v, ok := ev.Text(c.Match); ok && v != "" {
			if untimed && c.Match == sc.Replace {
				out = append(out, UntimedKey(sc.template, c.Match, v))
				continue
			}
			out = append(out, CancelKey(sc.template, c.Match, v))
		}
	}
	if k := sc.replaceKey(ev); k != "" && !slices.Contains(out, k) {
		out = append(out, k)
	}
	return out
}

// replaceKey is the key under which ev's notifications replace what an
// earlier event scheduled under sc; empty when sc replaces nothing, or ev
// has no time or no value at its path.
func (sc *Schedule) replaceKey(ev *events.Event) string {
	if sc.Replace == "" || ev.Time.IsZero() {
		return ""
	}
	if v, ok := ev.Text(sc.Replace); ok && v != "" {
		return CancelKey(sc.template, sc.Replace, v)
	}
	return ""
}

// UntimedKey is the cancel key of template's match path and value as an
// event without a time carries it, where that path is also the rule's
// replace path: a cancellation withdraws by both forms (Set.Cancels), a
// replacement only by CancelKey's. An untimed schedule is withdrawn by
// every cancellation of its keys whatever its time, so under the shared
// key an earlier confirmation's replacement withdrew a later untimed one
// and left the stale reminder (an outside tester's find); a key of its own
// for every timed message instead cost the index about 900 bytes per
// waiting reminder. The "untimed:" sits where CancelKey has the path,
// which has no colon, so no value makes one key the other's.
func UntimedKey(template, match, value string) string {
	return template + "|untimed:" + match + "=" + value
}

// CancelKey is the key that joins a scheduled notification of template to
// the events that cancel it: the match path and its value.
func CancelKey(template, match, value string) string {
	return template + "|" + match + "=" + value
}

// Cancels returns the cancel keys ev withdraws: for every scheduled rule
// in the tree whose cancel_on names ev's type, the key of ev's value at the
// rule's match path. Sorted, without repeats; none for most events.
func (s *Set) Cancels(ev *events.Event) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, c := range s.cancelers[ev.Type] {
		if v, ok := ev.Text(c.match); ok && v != "" {
			out = append(out, CancelKey(c.template, c.match, v))
			if c.replaced {
				out = append(out, UntimedKey(c.template, c.match, v))
			}
		}
	}
	sort.Strings(out)
	return compactStrings(out)
}

// Replaces returns the keys under which ev replaces what earlier events
// scheduled: one per scheduled rule of ev's type with a replace path that
// ev has a value at. Sorted, without repeats; none for most events, and
// none for an event without a time, which cannot be ordered against the
// events it would replace (nor be replaced: its messages lack the key).
func (s *Set) Replaces(ev *events.Event) []string {
	if s == nil || ev.Time.IsZero() {
		return nil
	}
	t := s.types[ev.Type]
	if t == nil {
		return nil
	}
	var out []string
	for _, r := range t.rules {
		if r.schedule != nil {
			if k := r.schedule.replaceKey(ev); k != "" {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return compactStrings(out)
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// canceler is one cancel_on of a scheduled rule, indexed by the cancelling
// event type.
type canceler struct {
	template, match string
	// replaced: match is also the rule's replace path, so untimed events'
	// messages carry the key's untimed form, which is cancelled too.
	replaced bool
}

// indexCancels builds s.cancelers from the rules' schedules and reports a
// cancel rule that can never match: an event type the tree does not route
// nor knows, or a match path neither event's samples have.
func (s *Set) indexCancels(probs *problems) {
	s.cancelers = map[string][]canceler{}
	defer s.checkCancelKeys(probs)
	for _, name := range s.names {
		for _, r := range s.types[name].rules {
			if r.expires != nil && !samplesHaveTime(s.samples[name], r.expires.Path) {
				probs.at(name+"/routing.yaml", r.line, 0, "", "%s: expires %q: no sample of %s has an RFC 3339 time at data.%s", r.label(), r.expires.String(), name, r.expires.Path)
			}
			sc := r.cancels()
			if sc == nil {
				continue
			}
			for _, c := range sc.CancelOn {
				s.cancelers[c.Event] = append(s.cancelers[c.Event], canceler{template: r.template, match: c.Match, replaced: c.Match == sc.Replace})
				file := name + "/routing.yaml"
				if _, ok := s.types[c.Event]; !ok {
					probs.at(file, r.line, 0, "", "%s: cancel_on event %q has no folder in this tree, so it never arrives routed and the cancellation can never match; add its folder or correct the name", r.label(), c.Event)
					continue
				}
				if !samplesHave(s.samples[c.Event], c.Match) {
					probs.at(file, r.line, 0, "", "%s: cancel_on %s: no sample of %s has data.%s, so the cancellation can never match", r.label(), c.Event, c.Event, c.Match)
				}
				if !samplesHave(s.samples[name], c.Match) {
					probs.at(file, r.line, 0, "", "%s: cancel_on %s: no sample of %s has data.%s, so its notifications have no key to cancel by", r.label(), c.Event, name, c.Match)
				}
			}
			if sc.Replace != "" && !samplesHave(s.samples[name], sc.Replace) {
				probs.at(name+"/routing.yaml", r.line, 0, "", "%s: schedule replace %s: no sample of %s has a text or number at data.%s (an object or a list names nothing), so no event can replace what an earlier one scheduled", r.label(), sc.Replace, name, sc.Replace)
			}
			if r.schedule != nil && !samplesHaveTime(s.samples[name], r.schedule.Path) {
				probs.at(name+"/routing.yaml", r.line, 0, "", "%s: schedule send %q: no sample of %s has an RFC 3339 time at data.%s", r.label(), r.schedule.String(), name, r.schedule.Path)
			}
		}
	}
}

// checkCancelKeys reports an event type whose cancellation would name
// more keys than a cancel record holds (notification.MaxCancelKeys): one
// per scheduled rule's cancel_on of it, two where the match path is also
// the rule's replace path (UntimedKey). Such a record is refused, and the
// whole cancelling event with it, so lint says so instead (an outside
// review: 32 rules sharing one schedule made 66 keys, and every booking
// cancellation went to the DLQ).
func (s *Set) checkCancelKeys(probs *problems) {
	types := make([]string, 0, len(s.cancelers))
	for typ := range s.cancelers {
		types = append(types, typ)
	}
	sort.Strings(types)
	for _, typ := range types {
		keys := map[string]bool{}
		for _, c := range s.cancelers[typ] {
			keys[CancelKey(c.template, c.match, "")] = true
			if c.replaced {
				keys[UntimedKey(c.template, c.match, "")] = true
			}
		}
		if len(keys) > notification.MaxCancelKeys {
			c := s.cancelers[typ][0]
			name, _, _ := strings.Cut(c.template, "/")
			probs.at(name+"/routing.yaml", 0, 0, "", "%s cancels by %d keys (cancel_on of the scheduled rules, and the untimed form of each that is also a replace path), at most %d: every %s would be refused", typ, len(keys), notification.MaxCancelKeys, typ)
		}
	}
}

func samplesHave(samples []Sample, path string) bool {
	for i := range samples {
		if ev := samples[i].Event; ev != nil {
			if v, ok := ev.Text(path); ok && v != "" {
				return true
			}
		}
	}
	return false
}

func samplesHaveTime(samples []Sample, path string) bool {
	for i := range samples {
		if ev := samples[i].Event; ev != nil {
			if v, ok := ev.Text(path); ok {
				if _, err := time.Parse(time.RFC3339, v); err == nil {
					return true
				}
			}
		}
	}
	return false
}
