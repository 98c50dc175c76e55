// Package topics names the Kafka topics herald reads and owns (docs/contracts.md §1).
package topics

import (
	"sync"

	"github.com/gymhq/herald/notification"
)

// DefaultEvents is the booking events topic; configurable, never created by herald.
const DefaultEvents = "gym.bookings.v1"

// DLQ receives poison input and permanently failed notifications.
const DLQ = "herald.dlq.v1"

// Derived carries the events herald raises itself (gym.class.busy): the
// dispatcher routes them by templates like the booking service's, but
// herald never writes the booking service's topic.
const Derived = "herald.derived.v1"

// Live carries the dashboard flow: each change of a class's attendance,
// keyed by class id, for the instructor's and front desk's live views. It
// has its own consumer group so that a flood of it never delays the
// transactional flow (the channel topics), and the reverse.
const Live = "herald.live.v1"

// Schedule holds what waits for a time (package schedule): scheduled
// notifications, deferred ones (quiet hours, caps, the retry ladder), the
// cancellations that withdraw them and the marks of those that fired. It
// is the scheduler's source of truth: its Redis index is rebuilt from it.
const Schedule = "herald.schedule.v1"

// GroupSchedule indexes the schedule topic (in the dispatcher role).
const GroupSchedule = "herald-scheduler"

// Channel is the topic a channel's notifications are published to.
func Channel(ch notification.Channel) string { return named(&channelTopics, ch, ".v1") }

// Retry is the topic a channel's delayed retries wait on.
func Retry(ch notification.Channel) string { return named(&retryTopics, ch, ".retry.v1") }

// channelTopics and retryTopics hold each channel's topic names once
// made: the dispatcher names a channel topic for every notification, and
// building the string each time was an allocation per notification
// (issue 14). Channels may be registered after start (a test's), so the
// names are made on first use rather than from the registry.
var channelTopics, retryTopics sync.Map // notification.Channel → string

func named(m *sync.Map, ch notification.Channel, suffix string) string {
	if t, ok := m.Load(ch); ok {
		return t.(string)
	}
	t := "herald." + string(ch) + suffix
	m.Store(ch, t)
	return t
}

// Owned lists every topic herald creates at start.
func Owned() []string {
	out := make([]string, 0, 2*len(notification.Known())+1)
	for _, ch := range notification.Known() {
		out = append(out, Channel(ch), Retry(ch))
	}
	return append(out, DLQ, Derived, Live, Schedule)
}

// Groups: one consumer group per role.
const GroupDispatch = "herald-dispatch"

// GroupAttendance keeps classes' attendance from the booking events (in
// the dispatcher role), and GroupLive fans its changes out to staff's live
// views (in the inapp role).
const (
	GroupAttendance = "herald-attendance"
	GroupLive       = "herald-inapp-live"
)

// Group is the consumer group of a channel's workers.
func Group(ch notification.Channel) string { return "herald-" + string(ch) }
