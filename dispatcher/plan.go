package dispatcher

import (
	"fmt"
	"time"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
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
}

// Routes is what the planner needs of a template set.
type Routes interface {
	Known(eventType string) bool
	Plan(ev *events.Event, now time.Time) ([]notification.Notification, error)
}

// Plan decodes raw and plans its notifications. Errors are ErrUnknownType
// (skip), or poison from decoding and validation (dead-letter) with their
// reason; an event with no reachable recipient yields none and no error.
func (p *Planner) Plan(raw []byte) ([]notification.Notification, error) {
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
	return p.Templates.Plan(ev, now())
}
