package dlq

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// EventsStage is how a filter names the dispatcher's dead letters (bad
// events), beside the channels' names.
const EventsStage = "events"

// Filter selects the dead letters herald dlq replay sends back. Zero
// fields select everything.
type Filter struct {
	// Reason keeps only records that failed with this reason.
	Reason string
	// Channel keeps only this channel's notifications, or with
	// EventsStage the dispatcher's events.
	Channel string
	// Since keeps only records whose last failure is at or after it.
	Since time.Time
}

// ParseFilter checks an operator's filter: channel must be a registered
// channel or "events", since an RFC 3339 time or a duration before now.
// Errors name the flag.
func ParseFilter(reason, channel, since string, now time.Time) (Filter, error) {
	f := Filter{Reason: reason, Channel: channel}
	if known := failure.Known(); reason != "" && !slices.Contains(known, failure.Reason(reason)) {
		names := make([]string, len(known))
		for i, r := range known {
			names[i] = string(r)
		}
		return Filter{}, fmt.Errorf("--reason: %q is not a reason herald writes (%s)", reason, strings.Join(names, ", "))
	}
	if channel != "" && channel != EventsStage && !notification.Channel(channel).Valid() {
		return Filter{}, fmt.Errorf("--channel: %q is not %s or %s", channel, notification.Names(), EventsStage)
	}
	if since != "" {
		t, err := ParseSince(since, now)
		if err != nil {
			return Filter{}, fmt.Errorf("--since: %w", err)
		}
		f.Since = t
	}
	return f, nil
}

// ParseSince reads an RFC 3339 time, or a duration before now.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration", s)
	}
	return now.Add(-d), nil
}

// Match reports whether e is selected.
func (f Filter) Match(e *Entry) bool {
	ch := e.Channel
	if e.Stage == "dispatcher" {
		ch = EventsStage
	}
	return (f.Reason == "" || e.Reason == f.Reason) && (f.Channel == "" || ch == f.Channel) &&
		(f.Since.IsZero() || !e.LastFailure.Before(f.Since))
}
