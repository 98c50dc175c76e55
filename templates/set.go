// Package templates is the product teams' interface to herald: for each
// event type, a folder holding routing.yaml (who is notified, on which
// channels), one template file per channel, locale and part, and sample
// events. It turns a decoded event into notifications (Plan) and a
// notification into a channel message (Render).
//
// Adding notifications for a new event type takes a new folder and no Go
// code, so everything a folder can express is validated by Load against its
// own samples: what would fail at 3 a.m. fails at lint time instead. The
// folder format and the data contract templates may rely on are documented
// in README.md beside this file.
//
// A Set is immutable after Load and safe for concurrent use. This package
// never talks to Kafka, Redis or providers.
package templates

import (
	"embed"
	"errors"
	"sort"
	"sync"

	"github.com/gymhq/herald/notification"
)

// ErrUnknownType is returned by Plan for an event type no folder routes.
// It is not poison: unknown types are counted and skipped (docs/contracts.md §2).
var ErrUnknownType = errors.New("no routing for event type")

// Set is a validated collection of event-type folders.
type Set struct {
	types map[string]*eventType
	rules map[ruleKey]*rule
	names []string
	langs map[string]*localeData // canonical tag → names and layouts
	// samples are the validated sample events of each type.
	samples map[string][]Sample
	// version identifies the tree's content (Version).
	version string
	// files holds what each channel's descriptor read of the tree
	// (channels.Descriptor.Files), by channel.
	files map[notification.Channel]any
	// roster is the tree's staff.yaml.
	roster *Roster
	// categories is the tree's categories.yaml, by name.
	categories map[string]*Category
	// cancelers are the scheduled rules' cancel_on, by cancelling type.
	cancelers map[string][]canceler
}

// Roster returns the tree's staff roster (staff.yaml).
func (s *Set) Roster() *Roster {
	if s == nil {
		return nil
	}
	return s.roster
}

// DefaultThreshold is the busy threshold of an event type whose
// routing.yaml sets none.
const DefaultThreshold = 0.8

// Threshold returns eventType's threshold (routing.yaml threshold: the
// share of a class's capacity at which herald raises it, for a derived
// event such as gym.class.busy) and whether the set routes eventType.
func (s *Set) Threshold(eventType string) (float64, bool) {
	if s == nil {
		return 0, false
	}
	t := s.types[eventType]
	if t == nil {
		return 0, false
	}
	if t.threshold == 0 {
		return DefaultThreshold, true
	}
	return t.threshold, true
}

// Files returns what ch's descriptor read from this tree with its Files
// hook (webhooks.yaml for the webhook channel), or nil.
func (s *Set) Files(ch notification.Channel) any {
	if s == nil {
		return nil
	}
	return s.files[ch]
}

// Version is a hash of the files the set was loaded from ("sha256:" and 12
// hex digits): equal trees have equal versions, in every pod. It is empty
// for a set loaded with Load from an fs.FS; LoadDir and Embedded set it.
func (s *Set) Version() string { return s.version }

type eventType struct {
	name        string
	description string
	rules       []*rule
	threshold   float64 // routing.yaml threshold; 0 is DefaultThreshold
}

// ruleKey finds the rule that planned a notification: Template is unique
// per channel within a Set.
type ruleKey struct {
	template string
	channel  notification.Channel
}

// Known reports whether eventType has a folder in the set.
func (s *Set) Known(eventType string) bool {
	_, ok := s.types[eventType]
	return ok
}

// EventTypes returns the routed event types, sorted.
func (s *Set) EventTypes() []string { return append([]string(nil), s.names...) }

// Description returns the description in eventType's routing.yaml.
func (s *Set) Description(eventType string) string {
	if t := s.types[eventType]; t != nil {
		return t.description
	}
	return ""
}

// The shipped folders. The patterns name file kinds, not event types, so a
// new folder is embedded without touching this file.
//
//go:embed */*.* */samples/*.json staff.yaml categories.yaml
var shipped embed.FS

var embeddedSet = sync.OnceValues(func() (*Set, error) {
	snap, err := snapshot(shipped)
	if err != nil {
		return nil, err
	}
	return snap.load()
})

// Embedded returns the template set compiled into the binary, validated
// once per process.
func Embedded() (*Set, error) { return embeddedSet() }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
