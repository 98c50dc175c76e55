package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

// Config wires a Scheduler. Zero values take the documented defaults.
type Config struct {
	Index     Index
	Publisher queue.Publisher
	Metrics   *obs.Metrics
	Logger    *zap.Logger
	Now       func() time.Time
	// Retention is how long done marks and cancellations are remembered:
	// the schedule topic's retention, so a rebuild never outlives them.
	// Default 30 days.
	Retention time.Duration
	// Tick is how often the firing loop looks for due entries; a
	// notification is published at most about a tick after its due time
	// while the loop keeps up. Default 100ms.
	Tick time.Duration
	// Lease is how long a firer holds entries it took; a firer that dies
	// leaves them to another after it. Default 30s.
	Lease time.Duration
	// Batch is how many due entries one step takes. Default 500.
	Batch int
	// Partitions returns the schedule topic's partition count; Scan reads
	// the named partitions of it from their start to their end as it was
	// when Scan began, calling fn in offset order within a partition.
	// Both are needed to rebuild the index (nil: the index is never
	// rebuilt, for tests that do not need it).
	Partitions func(ctx context.Context) (int, error)
	Scan       func(ctx context.Context, partitions []int, fn func(*queue.Message) error) error
	// Owner names this process in rebuild locks.
	Owner string
}

// Scheduler applies the schedule topic's records to the index (Handle, the
// herald-scheduler group's handler) and fires what is due (Run).
type Scheduler struct {
	cfg        Config
	log        *zap.Logger
	outcomeLog *zap.Logger // obs.OutcomeLogger(log)
	m          *obs.ScheduleMetrics

	mu          sync.Mutex
	partitions  int
	checkedAt   time.Time
	readyUntil  time.Time // the index was whole when last checked
	pendingSeen time.Time
}

// New returns a Scheduler for cfg.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Index == nil || cfg.Publisher == nil {
		return nil, errors.New("schedule: index and publisher are required")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = obs.NewMetrics()
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	return &Scheduler{cfg: cfg, log: cfg.Logger, outcomeLog: obs.OutcomeLogger(cfg.Logger), m: cfg.Metrics.Schedule}, nil
}

// Handle applies one record of the schedule topic. A record that does not
// decode goes to the DLQ; an index failure returns the error, so the
// runtime keeps the record and tries again.
func (s *Scheduler) Handle(ctx context.Context, m *queue.Message) error {
	r, err := Decode(m.Value)
	if err != nil {
		if err := dlq.Write(ctx, s.cfg.Publisher, dlq.Record(m, err, dlq.Info{Stage: "scheduler"})); err != nil {
			return err
		}
		s.cfg.Metrics.DLQWrites.WithLabelValues("scheduler", string(failure.ReasonOf(err))).Inc()
		s.outcomeLog.Warn("schedule record dead-lettered", zap.String("outcome", obs.OutcomeDeadLettered),
			zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(err))
		return nil
	}
	// A refresh copy turned away by a cancellation is not reported: the
	// notification's outcome was, when its record or the cancellation was
	// applied (HeaderRefresh).
	return s.apply(ctx, []*Record{r}, []*queue.Message{m}, m.Header(HeaderRefresh) == nil)
}

// MaxAhead bounds how far ahead a notification may be scheduled: the
// dispatcher refuses one due later, to the DLQ. The schedule topic's
// retention does not bound it (refreshAt); this is a bound on what a
// mistyped date costs, an entry in Redis for years.
const MaxAhead = 366 * 24 * time.Hour

// refreshMargin is how long before a copy of a schedule record leaves the
// topic its entry must be due for that copy to do (a day, as a broker
// deletes a segment only once all of it is past the retention, and clocks
// differ).
const refreshMargin = 24 * time.Hour

// refreshAt is when a new copy of a schedule record due at due, this copy
// written at written, must be written to the topic: half the retention
// after this copy, when the topic drops this copy before due (less a
// margin); zero when it does not. So a reminder booked weeks ahead stays
// on the topic, the source of truth, until it fires, however short the
// retention: each copy is written while the one before it is still there,
// and a rebuild finds at least one.
func (s *Scheduler) refreshAt(due, written time.Time) time.Time {
	if !due.After(written.Add(s.cfg.Retention - refreshMargin)) {
		return time.Time{}
	}
	return written.Add(s.cfg.Retention / 2)
}

// CancelSkew is how much later than a cancelling event's time an event
// may be and still have what it scheduled withdrawn by it. Event times
// come from the producers' clocks (a booking service's, a class
// service's), which differ by a little; a cancellation read with a time
// slightly before the booking it follows must still withdraw the booking's
// reminder. A booking made again (or a class reinstated) later than this
// after its cancellation keeps its reminders.
const CancelSkew = time.Minute

// apply applies records to the index: schedules, then cancellations, then
// done marks (the operations commute, so the order only saves work). ms
// are the records as read (their bytes are indexed, and their timestamps
// say when each copy was written). report logs and counts what it
// cancels; a rebuild re-applying old records does not.
func (s *Scheduler) apply(ctx context.Context, rs []*Record, ms []*queue.Message, report bool) error {
	var (
		entries []Entry
		cs      []Cancellation
		done    []string
		byID    map[string]*Record
	)
	for i, r := range rs {
		switch r.Kind {
		case KindSchedule:
			// The record as read: it decoded and validated, so the index
			// holds the topic's bytes rather than a re-encoding.
			written := ms[i].Time
			if written.IsZero() {
				written = r.At // a record without a timestamp: when it says it was written
			}
			e := Entry{ID: r.ID, Due: r.Due, Keys: r.Keys, Record: ms[i].Value, Refresh: s.refreshAt(r.Due, written)}
			if len(r.Keys) > 0 {
				e.EventTime = r.EventTime()
			}
			entries = append(entries, e)
			if report {
				if byID == nil {
					byID = map[string]*Record{}
				}
				byID[r.ID] = r
			}
		case KindCancel:
			at := reach(r.EventTime())
			for _, k := range r.Keys {
				cs = append(cs, Cancellation{Key: k, At: at})
			}
		case KindDone:
			done = append(done, r.ID)
		}
	}
	if len(entries) > 0 {
		cancelled, err := s.cfg.Index.Add(ctx, entries)
		if err != nil {
			return err
		}
		if report {
			for _, id := range cancelled {
				s.cancelled(id, byID[id], "")
			}
		}
	}
	if len(cs) > 0 {
		cancelled, err := s.cfg.Index.Cancel(ctx, cs, s.cfg.Retention)
		if err != nil {
			return err
		}
		if report {
			by := ""
			if len(rs) == 1 {
				by = rs[0].EventID
			}
			for _, e := range cancelled {
				var r *Record
				if len(e.Record) > 0 {
					r, _ = Decode(e.Record) // as indexed: it decoded when it was added
				}
				s.cancelled(e.ID, r, by)
			}
		}
	}
	if len(done) > 0 {
		if err := s.cfg.Index.Done(ctx, done, s.cfg.Retention); err != nil {
			return err
		}
	}
	return nil
}

// cancelled logs and counts the final outcome of a notification withdrawn
// before it was due. r is its schedule record when at hand.
func (s *Scheduler) cancelled(id string, r *Record, by string) {
	s.m.Outcomes.WithLabelValues(obs.OutcomeCancelled).Inc()
	var n *notification.Notification
	if r != nil {
		n, _ = notification.Decode(r.Notification)
	}
	if n == nil {
		// The index had no record to give back (an entry indexed before
		// Cancel returned records): not the outcome line of
		// docs/contracts.md §8, which needs the notification.
		s.log.Info("scheduled notification withdrawn", zap.String("cancelled", NotificationID(id)), zap.String("cancelled_by", by))
		return
	}
	s.cfg.Metrics.Notifications.WithLabelValues(string(n.Channel), obs.OutcomeCancelled, "").Inc()
	fields := []zap.Field{zap.String("outcome", obs.OutcomeCancelled), zap.String("notification_id", n.ID),
		zap.String("event_id", n.EventID), zap.String("template", n.Template), zap.String("channel", string(n.Channel)),
		zap.Int("attempt", n.Attempt), zap.String("to", obs.MaskAddress(string(n.Channel), n.To)),
		zap.Int("partition", -1), zap.Int64("offset", -1), zap.String("provider_message_id", ""), zap.Int64("latency_ms", 0)}
	if by != "" {
		fields = append(fields, zap.String("cancelled_by", by))
	}
	s.outcomeLog.Info("notification cancelled", fields...)
}

// Run fires due entries every tick until ctx ends. Nothing fires while a
// partition of the schedule topic is missing from the index: Run rebuilds
// it first (any scheduler process may, one per partition at a time).
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if err := s.Step(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduler step failed; trying again", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step checks the index is whole (rebuilding what it lacks) and fires
// every entry due now, in batches.
func (s *Scheduler) Step(ctx context.Context) error {
	ok, err := s.whole(ctx)
	if err != nil || !ok {
		return err
	}
	now := s.cfg.Now()
	if now.Sub(s.pendingSeen) >= 5*time.Second {
		if n, err := s.cfg.Index.Pending(ctx); err == nil {
			s.m.Pending.Set(float64(n))
		}
		s.pendingSeen = now
	}
	for range 64 { // bounded, so the whole check runs again under a flood
		if ctx.Err() != nil {
			return ctx.Err() // stopping: lease no more
		}
		// A batch leased is fired whole, even when the process is
		// stopping (herald run waits for the scheduler before it closes
		// the producer): cut short, after its leases were taken, it stayed
		// leased for the lease, and the next process fired it again then,
		// late, and twice for what had gone out. The lease bounds it, as it
		// bounds any firing.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Lease)
		es, err := s.cfg.Index.Due(fctx, s.cfg.Now(), s.cfg.Batch, s.cfg.Lease)
		if err == nil && len(es) > 0 {
			err = s.fire(fctx, es)
		}
		cancel()
		if err != nil {
			return err
		}
		if len(es) < s.cfg.Batch {
			break
		}
	}
	return s.refresh(ctx)
}

// refresh writes a new copy of each schedule record whose refresh time
// has come (refreshAt), the bytes as they are, under the key the first
// copy had. The copy is a no-op for the index but for its refresh time,
// for this release and earlier ones alike.
//
// One batch a step: a backlog of refreshes (after an outage, or a rebuild)
// goes out at Batch a tick, 5,000 a second by default, and never holds up
// the firing of due notifications for long. Each is leased for
// refreshLease: until its copy is applied, which may wait behind the
// herald-scheduler group's lag, the entry is not copied again.
func (s *Scheduler) refresh(ctx context.Context) error {
	es, err := s.cfg.Index.Stale(ctx, s.cfg.Now(), s.cfg.Batch, refreshLease)
	if err != nil || len(es) == 0 {
		return err
	}
	now := s.cfg.Now()
	msgs := make([]queue.Message, 0, len(es))
	for _, e := range es {
		msgs = append(msgs, queue.Message{Topic: topics.Schedule, Key: []byte(e.ID), Value: e.Record, Time: now,
			Headers: []queue.Header{{Key: HeaderRefresh, Value: []byte("1")}}})
	}
	if err := s.cfg.Publisher.Publish(ctx, msgs...); err != nil {
		return fmt.Errorf("schedule: refresh schedule records: %w", err)
	}
	s.m.Refreshed.Add(float64(len(msgs)))
	return nil
}

// HeaderRefresh marks a copy of a schedule record that refresh wrote. The
// index applies it as it applies the record; only the report differs: a
// copy that a cancellation turns away is not a second outcome of the
// notification (the record's own Add, or the cancellation, reported it).
const HeaderRefresh = "herald-refresh"

// HeaderReplace marks a cancel record ReplaceRecord wrote: what it
// withdraws, a later event of the same key replaced. The index applies it
// as any cancel record; herald trace says "replaced" for it.
const HeaderReplace = "herald-replace"

// refreshLease is how long a refreshed entry waits for its copy to be
// applied before it is copied again. A copy is written half a retention
// (at least a day) before the topic drops the one before it, so an hour
// costs no safety, and a consumer an hour behind gets one extra copy per
// entry, not one per step.
const refreshLease = time.Hour

// fire publishes due entries to their topics, then their done marks to
// the schedule topic, then removes them from the index. A crash between
// the steps fires them again after the lease: the channel workers'
// idempotency keys make that harmless.
func (s *Scheduler) fire(ctx context.Context, es []Entry) error {
	msgs := make([]queue.Message, 0, len(es))
	marks := make([]queue.Message, 0, len(es))
	ids := make([]string, 0, len(es))
	late := make([]float64, 0, len(es))
	now := s.cfg.Now()
	for _, e := range es {
		ids = append(ids, e.ID)
		r, err := Decode(e.Record)
		if err != nil || r.Kind != KindSchedule {
			s.log.Error("scheduler: index entry is not a schedule record; dropped", zap.String("entry", e.ID), zap.Error(err))
			continue
		}
		// Late from its due time, or from when it was scheduled if that
		// came after (a booking made less than its reminder's offset
		// ahead is due at once, not late by the difference).
		from := e.Due
		if r.At.After(from) {
			from = r.At
		}
		late = append(late, max(0, now.Sub(from).Seconds()))
		msgs = append(msgs, queue.Message{Topic: r.Topic, Key: []byte(r.Key), Value: wireForm(r.Notification), Time: now,
			Headers: []queue.Header{{Key: HeaderEventID, Value: []byte(r.EventID)}, {Key: HeaderFired, Value: []byte(r.ID)}}})
		mark, err := Message(&Record{Kind: KindDone, ID: r.ID, EventID: r.EventID, At: now})
		if err != nil {
			return err
		}
		marks = append(marks, mark)
	}
	if err := s.cfg.Publisher.Publish(ctx, msgs...); err != nil {
		return fmt.Errorf("schedule: publish due notifications: %w", err)
	}
	if err := s.cfg.Publisher.Publish(ctx, marks...); err != nil {
		return fmt.Errorf("schedule: publish done marks: %w", err)
	}
	if err := s.cfg.Index.Done(ctx, ids, s.cfg.Retention); err != nil {
		return err
	}
	for _, l := range late {
		s.m.Lateness.Observe(l)
	}
	s.m.Outcomes.WithLabelValues("fired").Add(float64(len(msgs)))
	return nil
}

// wireForm is a fired notification as channel topics carry it: the binary
// form (notification.Encode), though the schedule record holds JSON. One
// that does not decode goes as it is, for the worker to dead-letter with
// its reason.
func wireForm(embedded []byte) []byte {
	n, err := notification.Decode(embedded)
	if err != nil {
		return embedded
	}
	b, err := notification.Encode(n)
	if err != nil {
		return embedded
	}
	return b
}

// HeaderEventID is the event id header of a fired notification, as the
// dispatcher sets it (dispatcher.HeaderEventID).
const HeaderEventID = "herald-event-id"

// HeaderFired marks a notification the scheduler published when due (its
// value is the wait's EntryID). A worker whose clock is behind the
// scheduler's must not hand it back: that wait is done.
const HeaderFired = "herald-fired"

// whole reports whether the index holds every partition of the schedule
// topic, rebuilding the ones it lacks. Checked about once a second.
func (s *Scheduler) whole(ctx context.Context) (bool, error) {
	if s.cfg.Partitions == nil || s.cfg.Scan == nil {
		return true, nil
	}
	now := s.cfg.Now()
	if now.Before(s.readyUntil) {
		return true, nil
	}
	if s.partitions == 0 || now.Sub(s.checkedAt) > time.Minute {
		n, err := s.cfg.Partitions(ctx)
		if err != nil {
			return false, err
		}
		s.partitions, s.checkedAt = n, now
	}
	missing, err := s.cfg.Index.Missing(ctx, s.partitions)
	if err != nil {
		return false, err
	}
	if len(missing) == 0 {
		s.m.Paused.Set(0)
		s.readyUntil = now.Add(time.Second)
		return true, nil
	}
	s.m.Paused.Set(1)
	s.log.Warn("scheduler index lacks schedule topic partitions; rebuilding them before anything fires", zap.Ints("partitions", missing))
	for _, p := range missing {
		if err := s.rebuild(ctx, p); err != nil {
			return false, err
		}
	}
	return false, nil // checked again next tick
}

// rebuild re-reads partition p of the schedule topic into the index, under
// p's lock so one process does it.
func (s *Scheduler) rebuild(ctx context.Context, p int) error {
	ok, err := s.cfg.Index.Lock(ctx, p, s.cfg.Owner, 5*time.Minute)
	if err != nil || !ok {
		return err // another process rebuilds it
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = s.cfg.Index.Unlock(uctx, p, s.cfg.Owner)
	}()
	start := time.Now()
	var (
		batch []*Record
		msgs  []*queue.Message
		read  int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.apply(ctx, batch, msgs, false)
		batch, msgs = batch[:0], msgs[:0]
		return err
	}
	err = s.cfg.Scan(ctx, []int{p}, func(m *queue.Message) error {
		read++
		r, err := Decode(m.Value)
		if err != nil {
			return nil // dead-lettered when the live consumer read it
		}
		batch, msgs = append(batch, r), append(msgs, m)
		if len(batch) >= 500 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("schedule: rebuild partition %d: %w", p, err)
	}
	if err := s.cfg.Index.MarkReady(ctx, p); err != nil {
		return err
	}
	s.m.Rebuilds.Inc()
	s.log.Info("scheduler index rebuilt from the schedule topic", zap.Int("partition", p), zap.Int("records", read), zap.Duration("took", time.Since(start)))
	return nil
}

// Defer hands n to the scheduler until due, to be published to topic
// then (its channel topic, or its retry topic for a retry): it publishes
// the schedule record and counts it by why.
func Defer(ctx context.Context, pub queue.Publisher, m *obs.Metrics, n *notification.Notification, due time.Time, topic string, now time.Time) error {
	r, err := Schedule(n, due, topic, now)
	if err != nil {
		return err
	}
	msg, err := Message(r)
	if err != nil {
		return err
	}
	if err := pub.Publish(ctx, msg); err != nil {
		return err
	}
	if m != nil {
		// Label values that keep no record alive: n may be a worker's
		// shared decode of one.
		ch := "other"
		if spec := notification.SpecOf(n.Channel); spec != nil {
			ch = string(spec.Name)
		}
		m.Schedule.Held.WithLabelValues(ch, notification.DeferredLabel(n.Deferred)).Inc()
	}
	return nil
}
