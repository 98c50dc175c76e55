// Package live is herald's dashboard flow: classes' attendance kept from
// the booking events as they happen (package attendance), each change sent
// to the class's instructor and its location's front desk, and the
// derived gym.class.busy event raised once per upward crossing of the busy
// threshold.
//
// Two stages, each with its own topic and consumer group so that the flow
// never delays customers' messages and they never delay it:
//
//	booking events ─Aggregator (herald-attendance)─┬─> herald.live.v1 ─Fanout (herald-inapp-live)─> staff's live views
//	                                               └─> herald.derived.v1 (gym.class.busy) ─> dispatcher ─> inapp, push
//
// The Aggregator updates the class in Redis (one script, idempotent: a
// duplicate, a replay or an out-of-order redelivery changes nothing) and
// then publishes what the store says is unpublished — the outbox pattern,
// so a crash between the update and the publish is repaired by the
// redelivery, with ids that let downstream drop a publish that did happen.
package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/attendance"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

// BusyType is the derived event raised when a class fills up.
const BusyType = "gym.class.busy"

// FrontDeskRole is the staff.yaml role that sees a location's classes.
const FrontDeskRole = "front_desk"

// Attendance is a class's attendance as staff's live views get it (the
// Data of a feed.KindLive change, "event: live" on the gateway's stream).
type Attendance struct {
	Type         string    `json:"type"` // "attendance"
	ClassID      string    `json:"class_id"`
	ClassName    string    `json:"class_name"`
	Location     string    `json:"location"`
	StartsAt     time.Time `json:"starts_at"`
	InstructorID string    `json:"instructor_id,omitempty"`
	Confirmed    int       `json:"confirmed"`
	Capacity     int       `json:"capacity"`
	// Busy is whether the class is at or past its busy threshold.
	Busy   bool `json:"busy"`
	Closed bool `json:"closed"`
	// Version orders a class's figures: a view keeps the highest.
	Version int64 `json:"version"`
}

// Aggregator consumes the booking events.
type Aggregator struct {
	Store     attendance.Store
	Publisher queue.Publisher
	// Threshold returns the busy threshold of BusyType and whether the
	// templates route it; not routed, no busy event is raised.
	Threshold func() (float64, bool)
	Now       func() time.Time
	Logger    *zap.Logger
}

// retention is how long a class's state outlives its end: longer than a
// topic's retention, so a replay of the whole events topic finds the
// state it built and counts nothing twice.
const retention = 30 * 24 * time.Hour

// Handle applies one booking event.
func (a *Aggregator) Handle(ctx context.Context, m *queue.Message) error {
	ev, err := events.Decode(m.Value)
	if err != nil {
		return nil // the dispatcher dead-letters it
	}
	var kind attendance.Kind
	switch ev.Type {
	case events.BookingConfirmed, events.WaitlistPromoted:
		kind = attendance.Add
	case events.BookingCancelled:
		kind = attendance.Remove
	case events.ClassCancelled:
		kind = attendance.Close
	default:
		return nil
	}
	c, raw := classOf(ev)
	if c.ID == "" {
		return nil
	}
	booking, _ := ev.Data["booking_id"].(string)
	if kind != attendance.Close && booking == "" {
		a.logger().Debug("booking event without booking_id; attendance unchanged", zap.String("event_id", ev.ID))
		return nil
	}
	threshold, routed := 0.0, false
	if a.Threshold != nil {
		threshold, routed = a.Threshold()
	}
	need := 0
	if routed {
		need = attendance.Need(threshold, c.Capacity)
	}
	now := a.now()
	ttl := retention
	if !c.EndsAt.IsZero() && c.EndsAt.Sub(now) > 0 {
		ttl += c.EndsAt.Sub(now)
	}
	st, err := a.Store.Apply(ctx, attendance.Op{Kind: kind, ClassID: c.ID, BookingID: booking, Capacity: c.Capacity, Need: need, TTL: ttl})
	if errors.Is(err, attendance.ErrInvalid) {
		a.logger().Debug("event does not name a class attendance can keep", zap.String("event_id", ev.ID), zap.Error(err))
		return nil
	}
	if err != nil {
		return err
	}
	if st.PendingBusy > 0 {
		if !st.Closed {
			if err := a.publishBusy(ctx, m, raw, st, threshold, now); err != nil {
				return err
			}
		}
		if err := a.Store.MarkBusyPublished(ctx, c.ID, st.PendingBusy); err != nil {
			return err
		}
	}
	if st.Unpublished {
		u := Attendance{
			Type: "attendance", ClassID: c.ID, ClassName: clip(c.Name), Location: clip(c.Location), StartsAt: c.StartsAt,
			Confirmed: st.Confirmed, Capacity: st.Capacity, Busy: need > 0 && st.Confirmed >= need,
			Closed: st.Closed, Version: st.Version,
		}
		if c.Instructor != nil {
			u.InstructorID = c.Instructor.ID
		}
		b, err := json.Marshal(u)
		if err != nil {
			return failure.Perm(failure.ReasonInvalid, err)
		}
		if err := a.Publisher.Publish(ctx, queue.Message{Topic: topics.Live, Key: []byte(c.ID), Value: b, Headers: m.Headers, Time: now}); err != nil {
			return err
		}
		if err := a.Store.MarkPublished(ctx, c.ID, st.Version); err != nil {
			return err
		}
	}
	return nil
}

// maxText bounds the display text of a dashboard's figures: an event may
// carry a class name of any length (up to the event's 300,000 bytes), and
// a live value is at most feed.MaxItemBytes.
const maxText = 200

// clip cuts s to maxText characters, with an ellipsis.
func clip(s string) string {
	r := []rune(s)
	if len(r) <= maxText {
		return s
	}
	return string(r[:maxText-1]) + "…"
}

// publishBusy raises gym.class.busy for crossing st.PendingBusy, with an
// id that is the same on every retry: the dispatcher's notification ids
// derive from it, so a busy event published twice notifies once.
func (a *Aggregator) publishBusy(ctx context.Context, m *queue.Message, rawClass json.RawMessage, st attendance.State, threshold float64, now time.Time) error {
	var class map[string]any
	if err := json.Unmarshal(rawClass, &class); err != nil {
		return nil
	}
	class["booked"] = st.Confirmed // herald's count, not the producer's snapshot
	id := fmt.Sprintf("busy_%s_%d", st.ClassID, st.PendingBusy)
	b, err := json.Marshal(map[string]any{
		"specversion": "1.0", "id": id, "source": "herald", "type": BusyType,
		"time": now.UTC().Format(time.RFC3339Nano), "subject": "class/" + st.ClassID,
		"datacontenttype": "application/json",
		"data": map[string]any{
			"class": class, "confirmed": st.Confirmed, "threshold": threshold, "crossing": st.PendingBusy,
		},
	})
	if err != nil {
		return failure.Perm(failure.ReasonInvalid, err)
	}
	a.logger().Info("class busy", zap.String("class_id", st.ClassID), zap.Int("confirmed", st.Confirmed),
		zap.Int("capacity", st.Capacity), zap.Int64("crossing", st.PendingBusy), zap.String("event_id", id))
	return a.Publisher.Publish(ctx, queue.Message{Topic: topics.Derived, Key: []byte(st.ClassID), Value: b, Headers: m.Headers, Time: now})
}

// classOf returns the event's class, and its raw JSON for the busy event.
func classOf(ev *events.Event) (events.Class, json.RawMessage) {
	var d struct {
		Class json.RawMessage `json:"class"`
	}
	if json.Unmarshal(ev.RawData, &d) != nil || len(d.Class) == 0 {
		return events.Class{}, nil
	}
	var c events.Class
	if json.Unmarshal(d.Class, &c) != nil {
		return events.Class{}, nil
	}
	return c, d.Class
}

func (a *Aggregator) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

func (a *Aggregator) logger() *zap.Logger {
	if a.Logger == nil {
		return zap.NewNop()
	}
	return a.Logger
}

// Fanout consumes herald.live.v1: each attendance change goes to the
// class's instructor and its location's front desk (Staff, from the
// template tree's staff.yaml) as a live value, the latest version winning.
type Fanout struct {
	Feed feed.Store
	// Staff returns the ids of the people with role at location.
	Staff  func(role, location string) []string
	Logger *zap.Logger

	refusedOnce sync.Once
	refused     *zap.Logger
}

func (f *Fanout) logger() *zap.Logger {
	if f.Logger == nil {
		return zap.NewNop()
	}
	return f.Logger
}

// refusedLog is the logger of the records Handle passes over: 3 lines a
// second, then every 100th, so that a stream of bad records cannot flood
// the logs.
func (f *Fanout) refusedLog() *zap.Logger {
	f.refusedOnce.Do(func() { f.refused = obs.FloodLogger(f.logger()) })
	return f.refused
}

// keyed reports whether m is keyed by class, as the Aggregator keys its
// records, or not keyed at all: a record under another class's key would
// otherwise set that class's figures from the views of its own (an outside
// tester's kcat record pinned a class at a forged version) and, for the
// consumer's conflation, stand for another class's records.
func keyed(m *queue.Message, class string) bool {
	return len(m.Key) == 0 || string(m.Key) == class
}

// Handle delivers one attendance change.
func (f *Fanout) Handle(ctx context.Context, m *queue.Message) error {
	var u Attendance
	if err := json.Unmarshal(m.Value, &u); err != nil || u.ClassID == "" || !keyed(m, u.ClassID) {
		// herald writes this topic, so a record it cannot deliver is a
		// stranger's or damage: passed over (no view is wrong for it, and
		// the partition goes on), and said in a sampled line.
		why := "no class_id"
		switch {
		case err != nil:
			why = err.Error()
		case u.ClassID != "":
			why = fmt.Sprintf("class_id %q under the key of another class", u.ClassID)
		}
		f.refusedLog().Warn("attendance record passed over", zap.String("topic", m.Topic), zap.Int("partition", m.Partition),
			zap.Int64("offset", m.Offset), zap.ByteString("key", m.Key), zap.String("why", why))
		return nil
	}
	people := f.Staff(FrontDeskRole, u.Location)
	if u.InstructorID != "" {
		people = append([]string{u.InstructorID}, people...)
	}
	for _, p := range people {
		if _, err := f.Feed.SetLive(ctx, p, u.ClassID, u.Version, m.Value); err != nil {
			if errors.Is(err, feed.ErrInvalid) {
				// A person id no feed can have (the roster's, or the
				// event's instructor): the others still get it.
				f.logger().Warn("attendance not sent to a live view", zap.String("class_id", u.ClassID), zap.String("person", p), zap.Error(err))
				continue
			}
			return err
		}
	}
	return nil
}
