package templates

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
)

// Live is the template set a running process serves, replaced whole when
// its directory changes (Watch). It has the Set methods the dispatcher and
// the channel workers call; each call reads the current set once, so a
// plan or a render never mixes two versions. Safe for concurrent use.
//
// A swap does not touch notifications already planned: they carry their
// data and template name, and render with the templates current when the
// worker gets them. A template removed in a change therefore fails the
// render of its notifications still in flight (permanent, dead-lettered).
type Live struct {
	cur atomic.Pointer[Set]

	mu          sync.Mutex // serialises Reload
	lastRefused string     // version or error last refused, reported once
}

// NewLive serves s until a Reload replaces it.
func NewLive(s *Set) *Live {
	l := &Live{}
	l.cur.Store(s)
	return l
}

// Current returns the set being served.
func (l *Live) Current() *Set { return l.cur.Load() }

// Known reports whether the current set routes eventType.
func (l *Live) Known(eventType string) bool { return l.Current().Known(eventType) }

// Plan plans ev with the current set (Set.Plan).
func (l *Live) Plan(ev *events.Event, now time.Time) ([]notification.Notification, error) {
	return l.Current().Plan(ev, now)
}

// PlanChecked plans ev with the current set (Set.PlanChecked).
func (l *Live) PlanChecked(ev *events.Event, now time.Time, check func(notification.Channel, string) error) ([]notification.Notification, []Refusal, error) {
	return l.Current().PlanChecked(ev, now, check)
}

// PlanWith plans ev with the current set (Set.PlanWith).
func (l *Live) PlanWith(ev *events.Event, now time.Time, opts PlanOptions) ([]notification.Notification, []Refusal, error) {
	return l.Current().PlanWith(ev, now, opts)
}

// Cancels is Set.Cancels with the current set.
func (l *Live) Cancels(ev *events.Event) []string { return l.Current().Cancels(ev) }

// Replaces is Set.Replaces with the current set.
func (l *Live) Replaces(ev *events.Event) []string { return l.Current().Replaces(ev) }

// Category is Set.Category with the current set.
func (l *Live) Category(name string) *Category { return l.Current().Category(name) }

// Render renders n with the current set (Set.Render).
func (l *Live) Render(n *notification.Notification) (*channels.Message, error) {
	return l.Current().Render(n)
}

// Reload is the outcome of one look at the directory that found it changed.
type Reload struct {
	Version  string // of the directory as read; empty when it could not be read
	Previous string // of the set served before
	// Err is nil when the new set is now served. Otherwise the change was
	// refused and Previous is still served; Problems then holds every
	// validation problem (empty when the directory could not be read).
	Err      error
	Problems []Problem
}

// ErrUnchanged is returned by Reload when the directory holds the set
// being served, or the change it holds was already refused.
var ErrUnchanged = errors.New("templates unchanged")

// Reload reads dir; when its content differs from the set being served, it
// validates the new tree in full (Load) and swaps it in only if it has no
// problem. A refused version is reported once, not at every look.
func (l *Live) Reload(dir string) (Reload, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	prev := l.Current().Version()
	snap, err := dirVersion(dir)
	if err != nil {
		if l.lastRefused == err.Error() {
			return Reload{}, ErrUnchanged
		}
		l.lastRefused = err.Error()
		return Reload{Previous: prev, Err: err}, nil
	}
	if snap.version == prev || snap.version == l.lastRefused {
		return Reload{}, ErrUnchanged
	}
	s, err := Load(snap.fs)
	if err != nil {
		l.lastRefused = snap.version
		r := Reload{Version: snap.version, Previous: prev, Err: err}
		var le *LoadError
		if errors.As(err, &le) {
			r.Problems = le.Problems
		}
		return r, nil
	}
	s.version = snap.version
	l.lastRefused = ""
	l.cur.Store(s)
	return Reload{Version: snap.version, Previous: prev}, nil
}

// Watch calls Reload every interval until ctx ends, and report with each
// outcome that is not ErrUnchanged. Polling the content (rather than
// watching file events) sees a Kubernetes ConfigMap update, which swaps a
// symbolic link over a whole new folder, the same way as an editor's save,
// and needs no platform support.
func (l *Live) Watch(ctx context.Context, dir string, interval time.Duration, report func(Reload)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if r, err := l.Reload(dir); err == nil {
				report(r)
			}
		}
	}
}
