package schedule

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gymhq/herald/internal/logtest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

// log is a topic stand-in: every record published, in order, read back
// by the scheduler's Scan as the schedule topic.
type log struct {
	mu     sync.Mutex
	msgs   []queue.Message
	unread []queue.Message // published and not yet taken (take)
}

func (l *log) Publish(_ context.Context, msgs ...queue.Message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, msgs...)
	l.unread = append(l.unread, msgs...)
	return nil
}

// take returns what was published on topic since the last take, as a
// consumer of it reads it.
func (l *log) take(topic string) []queue.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out, keep []queue.Message
	for _, m := range l.unread {
		if m.Topic == topic {
			out = append(out, m)
		} else {
			keep = append(keep, m)
		}
	}
	l.unread = keep
	return out
}

// expire deletes the records of topic written before t, as a broker
// deletes what has outlived the topic's retention.
func (l *log) expire(topic string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = slices.DeleteFunc(l.msgs, func(m queue.Message) bool { return m.Topic == topic && m.Time.Before(t) })
}

func (l *log) on(topic string) []queue.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []queue.Message
	for _, m := range l.msgs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type rig struct {
	t     *testing.T
	log   *log
	clock *clock
	idx   *Memory
	m     *obs.Metrics
	s     *Scheduler
	logs  *observer.ObservedLogs
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, log: &log{}, clock: &clock{t: time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)}, m: obs.NewMetrics()}
	r.restart()
	return r
}

// restart is a new scheduler process on a new, empty index: Redis lost
// its contents. It rebuilds from the log.
func (r *rig) restart() {
	r.idx = NewMemory()
	r.idx.Now = r.clock.now
	logger, logs := logtest.Observed()
	r.logs = logs
	s, err := New(Config{Index: r.idx, Publisher: r.log, Metrics: r.m, Now: r.clock.now, Owner: "test", Logger: logger,
		Partitions: func(context.Context) (int, error) { return 1, nil },
		Scan: func(ctx context.Context, _ []int, fn func(*queue.Message) error) error {
			for _, m := range r.log.on(topics.Schedule) {
				if err := fn(&m); err != nil {
					return err
				}
			}
			return nil
		}})
	if err != nil {
		r.t.Fatal(err)
	}
	r.s = s
}

// deliver publishes msg to the log and hands it to the scheduler, as the
// herald-scheduler group would.
func (r *rig) deliver(msg queue.Message) {
	r.t.Helper()
	if err := r.log.Publish(context.Background(), msg); err != nil {
		r.t.Fatal(err)
	}
	r.log.take(msg.Topic) // read now
	if err := r.s.Handle(context.Background(), &msg); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) schedule(n *notification.Notification, due time.Time) {
	r.t.Helper()
	rec, err := Schedule(n, due, topics.Channel(n.Channel), r.clock.now())
	if err != nil {
		r.t.Fatal(err)
	}
	msg, err := Message(rec)
	if err != nil {
		r.t.Fatal(err)
	}
	r.deliver(msg)
}

func (r *rig) cancel(eventID string, keys ...string) {
	r.t.Helper()
	msg, err := Message(&Record{Kind: KindCancel, Keys: keys, EventID: eventID, At: r.clock.now()})
	if err != nil {
		r.t.Fatal(err)
	}
	r.deliver(msg)
}

func (r *rig) step() {
	r.t.Helper()
	for range 3 { // a rebuild takes a step before firing resumes
		if err := r.s.Step(context.Background()); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *rig) fired() []string {
	var ids []string
	for _, m := range r.log.on(topics.Channel(notification.Push)) {
		n, err := notification.Decode(m.Value)
		if err != nil {
			r.t.Fatal(err)
		}
		ids = append(ids, n.ID)
	}
	return ids
}

func reminder(event, booking string) *notification.Notification {
	n := sampleNotification()
	n.EventID = event
	n.CancelKeys = []string{"gym.booking.confirmed/reminder|booking_id=" + booking, "gym.booking.confirmed/reminder|class.id=cls_1"}
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	return n
}

func TestFiresOnceWhenDue(t *testing.T) {
	r := newRig(t)
	n := reminder("evt_1", "b1")
	due := r.clock.now().Add(2 * time.Hour)
	r.schedule(n, due)
	r.step()
	if got := r.fired(); len(got) != 0 {
		t.Fatalf("fired %v before its due time", got)
	}
	r.clock.add(2*time.Hour - time.Millisecond)
	r.step()
	if got := r.fired(); len(got) != 0 {
		t.Fatalf("fired %v a millisecond early", got)
	}
	r.clock.add(time.Millisecond)
	r.step()
	if got := r.fired(); len(got) != 1 || got[0] != n.ID {
		t.Fatalf("fired %v at its due time, want [%s]", got, n.ID)
	}
	r.schedule(n, due) // the dispatcher re-planned the event (a rebalance)
	r.clock.add(time.Minute)
	r.step()
	if got := r.fired(); len(got) != 1 {
		t.Fatalf("fired %d times, want once", len(got))
	}
	if marks := r.log.on(topics.Schedule); len(marks) != 3 {
		t.Fatalf("%d records on the schedule topic, want schedule, done mark, schedule", len(marks))
	}
}

// Lateness runs from the due time, or from when the notification was
// scheduled if that was later: a booking made an hour before its class has
// a reminder due an hour ago, sent at once, not an hour late (an outside
// tester's dev histogram read 3,600 s for such reminders). One scheduled
// in time and fired late is late by the delay.
func TestLatenessFromWhenScheduled(t *testing.T) {
	r := newRig(t)
	r.schedule(reminder("evt_late_booking", "b1"), r.clock.now().Add(-time.Hour))
	r.step()
	if n := testutil.CollectAndCount(r.m.Schedule.Lateness); n != 1 {
		t.Fatalf("%d lateness series", n)
	}
	if sum := histSum(t, r); sum > 1 {
		t.Fatalf("lateness of a reminder due before it was booked: %.1f s, want about 0", sum)
	}
	r.schedule(reminder("evt_in_time", "b2"), r.clock.now().Add(time.Minute))
	r.clock.add(time.Minute + 30*time.Second) // the firer was held up
	r.step()
	if sum := histSum(t, r); sum < 29 || sum > 31 {
		t.Fatalf("lateness sum %.1f s, want the 30 s delay", sum)
	}
}

func histSum(t *testing.T, r *rig) float64 {
	t.Helper()
	var m dto.Metric
	if err := r.m.Schedule.Lateness.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleSum()
}

func TestCancelledNeverFires(t *testing.T) {
	r := newRig(t)
	kept, gone, early := reminder("evt_1", "b1"), reminder("evt_2", "b2"), reminder("evt_3", "b3")
	due := r.clock.now().Add(2 * time.Hour)
	r.schedule(kept, due)
	r.schedule(gone, due)
	r.cancel("evt_cancel_b2", "gym.booking.confirmed/reminder|booking_id=b2")
	// The cancellation of b3 is applied before its schedule (another
	// partition was faster): the schedule must still be withdrawn.
	r.cancel("evt_cancel_b3", "gym.booking.confirmed/reminder|booking_id=b3")
	r.schedule(early, due)
	r.clock.add(2 * time.Hour)
	r.step()
	if got := r.fired(); len(got) != 1 || got[0] != kept.ID {
		t.Fatalf("fired %v, want only %s", got, kept.ID)
	}
	if c := testutil.ToFloat64(r.m.Schedule.Outcomes.WithLabelValues(obs.OutcomeCancelled)); c != 2 {
		t.Fatalf("cancelled outcomes %v, want 2", c)
	}
	// Each has its outcome line, b2's too, which its key withdrew from the
	// index: the index gives back the record. Before, that one (the common
	// case: a cancellation after the booking) logged a line without
	// outcome, event or channel, and herald_notifications_total missed it
	// (an outside tester's find).
	if n := logtest.Count(logtest.Outcomes(t, r.logs), obs.OutcomeCancelled); n != 2 {
		t.Errorf("%d cancelled outcome lines, want 2", n)
	}
	lines := r.logs.FilterMessage("notification cancelled").FilterField(zap.String("event_id", "evt_2")).All()
	if len(lines) != 1 || lines[0].ContextMap()["cancelled_by"] != "evt_cancel_b2" || lines[0].ContextMap()["channel"] != string(gone.Channel) {
		t.Errorf("b2's lines %+v, want one naming its channel and evt_cancel_b2", lines)
	}
	if c := testutil.ToFloat64(r.m.Notifications.WithLabelValues(string(gone.Channel), obs.OutcomeCancelled, "")); c != 2 {
		t.Errorf("herald_notifications_total{outcome=cancelled} %v, want 2", c)
	}
}

// A schedule record that is not one goes to the DLQ, with one outcome line.
func TestUnreadableRecordDeadLettered(t *testing.T) {
	r := newRig(t)
	r.deliver(queue.Message{Topic: topics.Schedule, Key: []byte("k"), Value: []byte("not a schedule record")})
	if got := len(r.log.on(topics.DLQ)); got != 1 {
		t.Fatalf("%d dead letters, want 1", got)
	}
	if n := logtest.Count(logtest.Outcomes(t, r.logs), obs.OutcomeDeadLettered); n != 1 {
		t.Errorf("%d dead-lettered outcome lines, want 1", n)
	}
}

// A class's cancellation withdraws every reminder of the class at once.
func TestCancelByClass(t *testing.T) {
	r := newRig(t)
	due := r.clock.now().Add(time.Hour)
	for _, b := range []string{"b1", "b2", "b3"} {
		r.schedule(reminder("evt_"+b, b), due)
	}
	r.cancel("evt_class_cancelled", "gym.booking.confirmed/reminder|class.id=cls_1")
	r.clock.add(time.Hour)
	r.step()
	if got := r.fired(); len(got) != 0 {
		t.Fatalf("fired %v after the class was cancelled", got)
	}
}

// Redis loses the index: a new index is rebuilt from the schedule topic
// before anything fires, and then what had fired does not fire again,
// what was cancelled stays cancelled, and what was pending fires.
func TestRebuildAfterIndexLoss(t *testing.T) {
	r := newRig(t)
	first, pending, gone := reminder("evt_1", "b1"), reminder("evt_2", "b2"), reminder("evt_3", "b3")
	r.schedule(first, r.clock.now().Add(time.Minute))
	r.schedule(pending, r.clock.now().Add(time.Hour))
	r.schedule(gone, r.clock.now().Add(time.Hour))
	r.clock.add(time.Minute)
	r.step()
	r.cancel("evt_c", "gym.booking.confirmed/reminder|booking_id=b3")

	r.restart() // FLUSHALL
	if ok, err := r.s.whole(context.Background()); ok || err != nil {
		t.Fatalf("a lost index was taken as whole (%v)", err)
	}
	r.clock.add(time.Hour)
	r.step()
	got := r.fired()
	if len(got) != 2 || got[0] != first.ID || got[1] != pending.ID {
		t.Fatalf("fired %v, want %s once then %s", got, first.ID, pending.ID)
	}
	if c := testutil.ToFloat64(r.m.Schedule.Rebuilds); c != 2 {
		t.Fatalf("rebuilds %v, want 2 (the first start's, and the one after the loss)", c)
	}
}

// A firer that dies after taking entries leaves them to the next after
// its lease; the notification then goes out (twice at worst, which the
// channel worker's idempotency key collapses).
func TestLeaseOfADeadFirer(t *testing.T) {
	r := newRig(t)
	n := reminder("evt_1", "b1")
	r.schedule(n, r.clock.now())
	if _, err := r.idx.Due(context.Background(), r.clock.now(), 10, 30*time.Second); err != nil {
		t.Fatal(err) // the dead firer's lease
	}
	r.step()
	if got := r.fired(); len(got) != 0 {
		t.Fatalf("fired %v while another held the lease", got)
	}
	r.clock.add(31 * time.Second)
	r.step()
	if got := r.fired(); len(got) != 1 {
		t.Fatalf("fired %v after the lease ended, want once", got)
	}
}

// A notification that waits twice — a retry after a retry, a reminder
// then capped — is held and fired each time: its second wait is not
// taken for the first one fired again.
func TestWaitsTwice(t *testing.T) {
	r := newRig(t)
	n := reminder("evt_1", "b1")
	r.schedule(n, r.clock.now().Add(time.Minute))
	r.clock.add(time.Minute)
	r.step()
	n.Attempt, n.Deferred = 1, notification.DeferRetry
	r.schedule(n, r.clock.now().Add(10*time.Second))
	r.clock.add(10 * time.Second)
	r.step()
	n.Attempt = 2
	r.schedule(n, r.clock.now().Add(30*time.Second))
	r.clock.add(30 * time.Second)
	r.step()
	if got := r.fired(); len(got) != 3 {
		t.Fatalf("fired %d times, want 3 (the schedule and two retries)", len(got))
	}
}

// A fired notification goes to its channel topic in the binary form every
// other notification record has (docs/contracts.md §3), not the JSON form
// the schedule record embeds it in: before, every reminder, deferral and
// retry the scheduler fired was JSON on the channel topic (found by the
// outside tester), larger and slower for the worker to decode.
func TestFiresTheBinaryForm(t *testing.T) {
	r := newRig(t)
	n := reminder("evt_1", "b1")
	r.schedule(n, r.clock.now().Add(time.Minute))
	r.clock.add(time.Minute)
	r.step()
	msgs := r.log.on(topics.Channel(notification.Push))
	if len(msgs) != 1 {
		t.Fatalf("%d fired, want 1", len(msgs))
	}
	want, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msgs[0].Value, want) {
		t.Fatalf("fired value starts %q, want the binary form (%q…)", msgs[0].Value[:min(16, len(msgs[0].Value))], want[:16])
	}
}

// TestFarAheadStaysOnTheTopic: a reminder booked three retentions ahead
// keeps a copy of its schedule record on the topic, the source of truth,
// for as long as it waits: the scheduler writes the record again before
// the broker deletes the last copy. Redis losing the index on the way
// loses nothing, and the reminder fires once, when due. (Before, the
// dispatcher refused such a reminder to the DLQ: an outside tester's
// classes 34 days out made 8,000 dead letters.)
func TestFarAheadStaysOnTheTopic(t *testing.T) {
	r := newRig(t)
	const retention = 30 * 24 * time.Hour // the scheduler's default
	n := reminder("evt_far", "b1")
	due := r.clock.now().Add(90*24*time.Hour + 7*time.Hour)
	r.schedule(n, due)
	id := EntryID(n.ID, due, n.Attempt)
	onTopic := func() int {
		copies := 0
		for _, m := range r.log.on(topics.Schedule) {
			if rec, err := Decode(m.Value); err == nil && rec.Kind == KindSchedule && rec.ID == id {
				copies++
			}
		}
		return copies
	}
	for day := 1; r.clock.now().Before(due); day++ {
		r.clock.add(min(24*time.Hour, due.Sub(r.clock.now())))
		r.log.expire(topics.Schedule, r.clock.now().Add(-retention))
		if day == 45 {
			r.restart() // FLUSHALL: rebuilt from what the topic still holds
		}
		r.step()
		for _, m := range r.log.take(topics.Schedule) { // the herald-scheduler group reads the copies
			if err := r.s.Handle(context.Background(), &m); err != nil {
				t.Fatal(err)
			}
		}
		if len(r.fired()) == 0 && onTopic() == 0 {
			t.Fatalf("day %d: the topic holds no copy of the waiting reminder's record", day)
		}
	}
	r.step()
	if got := r.fired(); len(got) != 1 || got[0] != n.ID {
		t.Fatalf("fired %v, want %s once", got, n.ID)
	}
	// Refreshed every half retention, at days 15, 30, 45, 60 and 75; the
	// copy of day 75 lasts until the reminder is due (day 90 and 7 h)
	// with a day to spare, the one of day 60 would not have.
	if c := testutil.ToFloat64(r.m.Schedule.Refreshed); c != 5 {
		t.Errorf("herald_schedule_refreshed_total %v, want 5", c)
	}
}

// TestRefreshWaitsForItsCopy: while the herald-scheduler group lags and a
// refreshed record's copy is not yet applied, the scheduler does not copy
// it again every step (an outside review's find: one copy per 30 s lease,
// twenty in ten minutes of lag, each adding to the lag). After
// refreshLease with the copy still unapplied, one more copy goes out.
func TestRefreshWaitsForItsCopy(t *testing.T) {
	r := newRig(t)
	n := reminder("evt_lag", "b1")
	r.schedule(n, r.clock.now().Add(40*24*time.Hour))
	r.clock.add(15*24*time.Hour + time.Minute)
	for range 20 { // ten minutes: copies published, none applied
		r.step()
		r.clock.add(30 * time.Second)
	}
	if copies := len(r.log.take(topics.Schedule)); copies != 1 {
		t.Fatalf("%d copies of one record while its first copy waited to be applied, want 1", copies)
	}
	r.clock.add(refreshLease)
	r.step()
	if copies := len(r.log.take(topics.Schedule)); copies != 1 {
		t.Fatalf("%d copies after the lease, want 1 more", copies)
	}
}

// TestRefreshOneBatchAStep: a backlog of refreshes goes out Batch a step,
// so firing what is due never waits behind all of it.
func TestRefreshOneBatchAStep(t *testing.T) {
	r := newRig(t)
	r.s.cfg.Batch = 10
	for i := range 25 {
		r.schedule(reminder(fmt.Sprintf("evt_%d", i), fmt.Sprintf("b%d", i)), r.clock.now().Add(40*24*time.Hour))
	}
	r.step() // the first start's rebuild; nothing is stale yet
	r.log.take(topics.Schedule)
	r.clock.add(16 * 24 * time.Hour)
	for _, want := range []int{10, 10, 5, 0} {
		if err := r.s.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := len(r.log.take(topics.Schedule)); got != want {
			t.Fatalf("a step wrote %d copies, want %d", got, want)
		}
	}
}

// TestRefreshCopyOfACancelledReminder: a refresh copy still waiting to be
// applied when its booking is cancelled is turned away like any duplicate,
// without a second outcome: one cancelled line, one count (a second
// review's find: two of each). The first copy's own record, turned away
// by a tombstone, is still reported.
func TestRefreshCopyOfACancelledReminder(t *testing.T) {
	r := newRig(t)
	n := reminder("evt_c", "b1")
	r.schedule(n, r.clock.now().Add(40*24*time.Hour))
	r.clock.add(15*24*time.Hour + time.Minute)
	r.step()
	copies := r.log.take(topics.Schedule) // written, not yet applied
	if len(copies) != 1 || string(copies[0].Header(HeaderRefresh)) != "1" {
		t.Fatalf("copies %+v, want one marked %s", copies, HeaderRefresh)
	}
	r.clock.add(time.Second)
	r.cancel("evt_cancel", "gym.booking.confirmed/reminder|booking_id=b1")
	if err := r.s.Handle(context.Background(), &copies[0]); err != nil {
		t.Fatal(err)
	}
	if got := logtest.Count(logtest.Outcomes(t, r.logs), obs.OutcomeCancelled); got != 1 {
		t.Errorf("%d cancelled outcome lines, want 1", got)
	}
	if c := testutil.ToFloat64(r.m.Schedule.Outcomes.WithLabelValues(obs.OutcomeCancelled)); c != 1 {
		t.Errorf("herald_schedule_outcomes_total{cancelled} %v, want 1", c)
	}
	if c := testutil.ToFloat64(r.m.Notifications.WithLabelValues(string(n.Channel), obs.OutcomeCancelled, "")); c != 1 {
		t.Errorf("herald_notifications_total{cancelled} %v, want 1", c)
	}

	// A schedule record (not a copy) that a tombstone turns away is reported.
	late := reminder("evt_late", "b1")
	r.schedule(late, r.clock.now().Add(40*24*time.Hour))
	if got := logtest.Count(logtest.Outcomes(t, r.logs), obs.OutcomeCancelled); got != 2 {
		t.Errorf("%d cancelled outcome lines after a record the tombstone turned away, want 2", got)
	}
}

// stopping is a producer that the process is stopping under: the stop's
// signal arrives as the scheduler's first publish goes out, and a publish
// on a context that has ended fails, as kafkarun's does.
type stopping struct {
	*log
	stop func()
}

func (s *stopping) Publish(ctx context.Context, msgs ...queue.Message) error {
	s.stop()
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.log.Publish(ctx, msgs...)
}

// A stop (SIGTERM, a rolling deploy) that arrives while the scheduler fires
// a batch lets the batch finish: its notifications are published and
// marked done, and nothing is left leased. Before, the stop cut the
// firing short, the batch stayed leased for the lease's 30 s, and the next
// process fired it again then: late, and twice for what had gone out (an
// outside tester's find).
func TestStopWhileFiringFinishesTheBatch(t *testing.T) {
	r := newRig(t)
	for i := range 3 {
		r.schedule(reminder(fmt.Sprintf("evt_%d", i), fmt.Sprintf("b%d", i)), r.clock.now().Add(time.Second))
	}
	r.step() // the index checked whole; nothing due yet
	if got := r.fired(); len(got) != 0 {
		t.Fatalf("fired %v before they were due", got)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	r.s.cfg.Publisher = &stopping{log: r.log, stop: stop}
	r.clock.add(time.Second)
	for range 3 {
		_ = r.s.Step(ctx)
	}
	if got := r.fired(); len(got) != 3 {
		t.Fatalf("fired %d of 3 due when the stop came, want all", len(got))
	}
	r.s.cfg.Publisher = r.log
	r.clock.add(31 * time.Second) // past any lease
	r.step()
	if got := r.fired(); len(got) != 3 {
		t.Fatalf("fired %d times after the lease would have ended, want the 3 once each", len(got))
	}
}
