package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
)

// scheduled: a million booking reminders scheduled days ahead, indexed by
// the scheduler process (the herald-scheduler group and the firing loop,
// as herald run wires them, on the bench's Kafka cluster (kfake) and a real
// Redis); then a firing set due at a stated rate, whose lateness against
// its due time is measured where a channel worker would read it; then
// cancellations of scheduled reminders. The baseline is what a team builds
// without a scheduler: the same reminders in a table polled once a second
// (a Redis sorted set of due times and a hash of notifications, on the
// same Redis), publishing what is due to Kafka with the same producer.
const (
	// scheduledWaiting is how many reminders wait, due 2 to 7 days ahead;
	// HERALD_BENCH_SCHEDULED (or Options.Scheduled) sets another. At a
	// million the scenario takes 3.5–4 minutes on a 2-core VM, 2.5 of them
	// the scheduler indexing (about 7,000 records/s there);
	// HERALD_BENCH_SCHEDULED=100000 takes under a minute.
	scheduledWaiting = 1_000_000
	// scheduledFiring reminders are due at scheduledRate, from at least
	// scheduledLead after they were published (longer when the scheduler
	// needs longer to index them).
	scheduledFiring = 20_000
	scheduledRate   = 2_000
	scheduledLead   = 3 * time.Second
	// scheduledCancels bookings of waiting reminders are cancelled.
	scheduledCancels = 10_000
	// scheduledBases is how many planned reminders (members) the
	// records are copied from.
	scheduledBases = 500
	// scheduledWatchGroup reads what fires, as a channel worker would.
	scheduledWatchGroup = "bench-scheduled-watch"
	naiveDueKey         = "naive:sched:due"
	naiveRecKey         = "naive:sched:rec"
)

// scheduledSize is one run's sizes.
type scheduledSize struct {
	Waiting, Firing, Rate, Cancels int
}

// sizeOf is the run's sizes: the defaults times Options.Scale, or
// Options.Scheduled / HERALD_BENCH_SCHEDULED waiting reminders.
func sizeOf(o Options) (scheduledSize, error) {
	sz := scheduledSize{
		Waiting: o.scaled(scheduledWaiting), Firing: max(50, o.scaled(scheduledFiring)),
		Rate: scheduledRate, Cancels: o.scaled(scheduledCancels),
	}
	if v := os.Getenv("HERALD_BENCH_SCHEDULED"); v != "" && o.Scheduled == 0 {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return sz, fmt.Errorf("HERALD_BENCH_SCHEDULED=%q: want a positive count of waiting reminders", v)
		}
		o.Scheduled = n
	}
	if o.Scheduled > 0 {
		sz.Waiting = o.Scheduled
	}
	sz.Cancels = min(sz.Cancels, sz.Waiting)
	return sz, nil
}

// runScheduled is the scheduled scenario at the run's size.
func runScheduled(ctx context.Context, env *Env) (Result, error) {
	sz, err := sizeOf(env.Opts)
	if err != nil {
		return Result{}, err
	}
	return runScheduledSize(ctx, env, sz)
}

// runScheduledSize runs the scheduled scenario at sz. It fails when a due
// reminder never fires, one not due fires, or a cancellation leaves the
// index other than it should; a duplicate only misses the target (the
// channel workers' idempotency keys absorb one).
func runScheduledSize(ctx context.Context, env *Env, sz scheduledSize) (res Result, err error) {
	cfg := config.Defaults()
	src, err := newReminders(env.Templates, scheduledBases, time.Now())
	if err != nil {
		return Result{}, err
	}
	channel := src.bases[0].n.Channel
	kc, err := env.cluster()
	if err != nil {
		return Result{}, err
	}
	defer kc.Close()
	brokers := kc.Brokers()
	parts := cfg.TopicPartitions // the schedule topic as herald creates it
	if err := createTopics(ctx, brokers, parts, topics.Schedule); err != nil {
		return Result{}, err
	}
	if err := createTopics(ctx, brokers, pipelinePartsNum, topics.Channel(channel), naiveTopic(channel)); err != nil {
		return Result{}, err
	}
	if err := env.Redis.FlushAll(); err != nil {
		return Result{}, err
	}
	rc := redis.NewClient(env.Redis.Options())
	defer rc.Close()
	// The index of a million reminders is gigabytes: emptying it takes
	// longer than a client's default timeout, which the next scenario's
	// FLUSHALL would hit.
	defer flushSlowly(ctx, env)
	idx := schedule.NewRedis(rc, schedule.RedisOptions{})

	// The waiting reminders, queued on the schedule topic before the
	// scheduler starts: it comes up with them to index, as a scheduler
	// restarted behind its group's lag does. The index is marked whole
	// (its ready marks), so the records go through the live consumer,
	// Scheduler.Handle, one at a time, and not through a rebuild.
	env.Opts.logf("bench: scheduled: queueing %d reminders due 2–7 days ahead", sz.Waiting)
	start := time.Now()
	waitingDue := func(i int) time.Time {
		return start.Add(48*time.Hour + time.Duration(i)*(5*24*time.Hour/time.Duration(sz.Waiting)))
	}
	recordBytes, err := queueReminders(ctx, brokers, src, "rem", sz.Waiting, waitingDue)
	if err != nil {
		return Result{}, err
	}
	queueSecs := time.Since(start).Seconds()
	for p := range parts {
		if err := idx.MarkReady(ctx, p); err != nil {
			return Result{}, err
		}
	}
	mem0, err := redisInfo(ctx, rc, "memory", "used_memory")
	if err != nil {
		return Result{}, err
	}

	// What fires is read as a channel worker would, by a consumer group of
	// its own.
	watch := newFiredWatch()
	wc, err := startConsumer(kafkarun.ConsumerConfig{Brokers: brokers, GroupID: scheduledWatchGroup, Topics: []string{topics.Channel(channel)}, MaxInFlight: 256}, watch.handle)
	if err != nil {
		return Result{}, err
	}
	defer stopAll([]*consumer{wc})
	if err := waitJoined(ctx, []*consumer{wc}); err != nil {
		return Result{}, err
	}

	env.Opts.logf("bench: scheduled: %d records queued in %.1f s; starting the scheduler process", sz.Waiting, queueSecs)
	ch, err := env.startChild(ctx, SchedulerFlag, schedulerSpec{Brokers: brokers, RedisURL: env.Redis.URL(), Partitions: parts})
	if err != nil {
		return Result{}, err
	}
	finished := false
	defer func() {
		if !finished {
			ch.stdin.Close()
			_ = ch.cmd.Wait()
			if err != nil {
				err = fmt.Errorf("%w\nscheduler process: %s", err, ch.err.String())
			}
		}
	}()
	for {
		l, err := ch.line()
		if err != nil {
			return Result{}, fmt.Errorf("scheduler process: %w", err)
		}
		if l == "ready" {
			break
		}
	}
	pid := ch.cmd.Process.Pid
	spid := strconv.Itoa(pid)
	rssReady, err := memRSS(spid, "VmRSS:")
	if err != nil {
		return Result{}, err
	}

	// 1. Indexing: from the first record in the index to the last.
	cpu0, rcpu0 := procCPU(pid), redisCPU(ctx, rc)
	moved, indexed, err := waitPending(ctx, idx, 0, int64(sz.Waiting), time.Time{}, 50*time.Millisecond)
	if err != nil {
		return Result{}, fmt.Errorf("indexing: %w", err)
	}
	cpu1, rcpu1 := procCPU(pid), redisCPU(ctx, rc)
	indexSecs := indexed.Sub(moved).Seconds()
	rssIndexed, err := memRSS(spid, "VmRSS:")
	if err != nil {
		return Result{}, err
	}
	mem1, err := redisInfo(ctx, rc, "memory", "used_memory")
	if err != nil {
		return Result{}, err
	}
	perEntry := (mem1 - mem0) / float64(sz.Waiting)
	env.Opts.logf("bench: scheduled: %d indexed in %.1f s (%.0f/s); scheduler VmRSS %.0f MB; Redis %.0f bytes per entry",
		sz.Waiting, indexSecs, float64(sz.Waiting)/indexSecs, rssIndexed, perEntry)

	// 2. Firing: the firing set, due at the rate from a few seconds after
	// it was published: once the scheduler has indexed it, at the rate just
	// measured, with half as much again to spare.
	lead := max(scheduledLead, time.Second+time.Duration(1.5*float64(sz.Firing)/float64(sz.Waiting)*float64(indexed.Sub(moved))))
	env.Opts.logf("bench: scheduled: %d reminders due at %d/s from %v on", sz.Firing, sz.Rate, lead.Round(100*time.Millisecond))
	t0, msgs := firingSet(src, "due", sz, lead, watch)
	if err := preload(ctx, brokers, msgs); err != nil {
		return Result{}, err
	}
	var unindexed int64
	_, allIn, err := waitPending(ctx, idx, int64(sz.Waiting), int64(sz.Waiting+sz.Firing), t0, 10*time.Millisecond)
	if err != nil {
		return Result{}, fmt.Errorf("indexing the firing set: %w", err)
	}
	if allIn.IsZero() || allIn.After(t0) {
		n, _ := idx.Pending(ctx)
		unindexed = int64(sz.Waiting+sz.Firing) - n
	}
	cpu2, rcpu2, calls2 := procCPU(pid), redisCPU(ctx, rc), redisScriptCalls(ctx, rc)
	lastDue := t0.Add(dueOffset(sz.Firing-1, sz.Rate))
	if err := watch.wait(ctx, lastDue.Add(15*time.Second)); err != nil {
		return Result{}, err
	}
	time.Sleep(time.Second) // a duplicate would arrive by now
	cpu3, rcpu3, calls3 := procCPU(pid), redisCPU(ctx, rc), redisScriptCalls(ctx, rc)
	fired := watch.stats()
	if fired.missing > 0 || fired.unknown > 0 {
		return Result{}, fmt.Errorf("%d of %d due reminders never fired (%d fired, %d twice) and %d fired that were not due", fired.missing, sz.Firing, len(fired.late), fired.dups, fired.unknown)
	}

	// 3. Cancellation: one gym.booking.cancelled per reminder, by its
	// booking's cancel key, spread over the waiting ones.
	before, err := idx.Pending(ctx)
	if err != nil {
		return Result{}, err
	}
	env.Opts.logf("bench: scheduled: cancelling %d of %d waiting reminders", sz.Cancels, before)
	cancels, gone, kept, err := cancelSet(src, "rem", sz, waitingDue)
	if err != nil {
		return Result{}, err
	}
	cpu4, rcpu4 := procCPU(pid), redisCPU(ctx, rc)
	c0 := time.Now()
	if err := preload(ctx, brokers, cancels); err != nil {
		return Result{}, err
	}
	_, c1, err := waitPending(ctx, idx, before, before-int64(sz.Cancels), time.Time{}, 5*time.Millisecond)
	if err != nil {
		return Result{}, fmt.Errorf("cancelling: %w", err)
	}
	cpu5, rcpu5 := procCPU(pid), redisCPU(ctx, rc)
	cancelSecs := c1.Sub(c0).Seconds()
	time.Sleep(200 * time.Millisecond)
	after, err := idx.Pending(ctx)
	if err != nil {
		return Result{}, err
	}
	if after != before-int64(sz.Cancels) {
		return Result{}, fmt.Errorf("cancelling %d left %d pending of %d", sz.Cancels, after, before)
	}
	for _, id := range gone {
		if _, state, err := idx.Lookup(ctx, id); err != nil || state != "" {
			return Result{}, fmt.Errorf("cancelled reminder %s is %q in the index (%v)", id, state, err)
		}
	}
	for _, id := range kept {
		if _, state, err := idx.Lookup(ctx, id); err != nil || state != schedule.StatePending {
			return Result{}, fmt.Errorf("reminder %s next to a cancelled one is %q, want pending (%v)", id, state, err)
		}
	}

	// 4. Replacement: the record the dispatcher writes beside each booking
	// confirmation's schedules (schedule: replace:), here for bookings
	// confirmed for the first time, as most are: it withdraws nothing and
	// leaves a tombstone, whose count says when all were applied.
	tombs := func() (int64, error) { return rc.ZCard(ctx, schedule.DefaultPrefix+":{s}:tomb").Result() }
	tombs0, err := tombs()
	if err != nil {
		return Result{}, err
	}
	replaces, err := replaceSet(sz.Cancels)
	if err != nil {
		return Result{}, err
	}
	cpu6, rcpu6 := procCPU(pid), redisCPU(ctx, rc)
	r0 := time.Now()
	if err := preload(ctx, brokers, replaces); err != nil {
		return Result{}, err
	}
	var r1 time.Time
	for {
		n, err := tombs()
		if err != nil {
			return Result{}, err
		}
		if n >= tombs0+int64(len(replaces)) {
			r1 = time.Now()
			break
		}
		if time.Since(r0) > 2*time.Minute {
			return Result{}, fmt.Errorf("replacing: %d of %d tombstones after 2 minutes", n-tombs0, len(replaces))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cpu7, rcpu7 := procCPU(pid), redisCPU(ctx, rc)
	replaceSecs := r1.Sub(r0).Seconds()
	if n, err := idx.Pending(ctx); err != nil || n != after {
		return Result{}, fmt.Errorf("replacing bookings with nothing waiting left %d pending of %d (%v)", n, after, err)
	}

	hwm, err := peakRSS(spid)
	if err != nil {
		return Result{}, err
	}
	finished = true
	last, err := ch.finish()
	if err != nil {
		return Result{}, fmt.Errorf("scheduler process: %v\n%s", err, ch.err.String())
	}
	var rep schedulerReport
	if err := json.Unmarshal([]byte(last), &rep); err != nil {
		return Result{}, fmt.Errorf("scheduler process report %q: %w", last, err)
	}

	// Baseline: the same reminders in a table polled once a second.
	naive, err := runNaiveCron(ctx, env, rc, brokers, src, sz, lead)
	if err != nil {
		return Result{}, fmt.Errorf("baseline: %w", err)
	}

	p50, p99, pmax := percentile(fired.late, 50), percentile(fired.late, 99), percentile(fired.late, 100)
	b50, b99 := percentile(naive.fired.late, 50), percentile(naive.fired.late, 99)
	window := dueOffset(sz.Firing-1, sz.Rate).Seconds()
	firedPS := float64(len(fired.late)) / max(fired.lastAt.Sub(fired.firstAt).Seconds(), 0.001)
	us := func(cpu time.Duration, n int) float64 {
		return round(float64(cpu.Microseconds())/float64(max(1, n)), 1)
	}
	cancelUS := cancelSecs * 1e6 / float64(max(1, sz.Cancels))
	met := p99 <= 200 && fired.dups == 0 && hwm <= 200
	return Result{
		Messages: len(fired.late), Seconds: round(window, 2),
		BaselineSeconds: round(window, 2), BaselineMessages: len(naive.fired.late),
		RatioVsBaseline: round(b99/max(p99, 0.001), 1),
		NotificationsPS: f64(round(firedPS, 0)),
		P50ms:           f64(round(p50, 1)), P99ms: f64(round(p99, 1)),
		BaselineP50ms: f64(round(b50, 1)), BaselineP99ms: f64(round(b99, 1)),
		PeakRSSMB:           f64(round(hwm, 1)),
		CPUMicrosPerMessage: f64(us(cpu3-cpu2, len(fired.late))),

		Scheduled:          sz.Waiting,
		IndexPerSec:        f64(round(float64(sz.Waiting)/indexSecs, 0)),
		RSSAfterIndexMB:    f64(round(rssIndexed, 1)),
		RedisBytesPerEntry: f64(round(perEntry, 0)),
		LatenessP50ms:      f64(round(p50, 1)), LatenessP99ms: f64(round(p99, 1)), LatenessMaxms: f64(round(pmax, 1)),
		Duplicates: &fired.dups, Missing: &fired.missing,
		CancelMicros:     f64(round(cancelUS, 1)),
		CancelsPerSec:    f64(round(float64(sz.Cancels)/cancelSecs, 0)),
		ReplaceMicros:    f64(round(replaceSecs*1e6/float64(max(1, len(replaces))), 1)),
		ReplaceCPUMicros: f64(us(cpu7-cpu6+rcpu7-rcpu6, len(replaces))),

		Target: "a due reminder is on its channel topic within a tick or two (HERALD_SCHEDULE_TICK 100 ms): lateness p99 ≤ 200 ms at 2,000/s with 1,000,000 waiting, each fired once, scheduler peak RSS ≤ 200 MB",
		Met:    met,
		Note: fmt.Sprintf("%d reminders waiting (due 2–7 days ahead; each the push reminder the dispatcher plans for a booking, %d-byte schedule record, 2 keys: the booking's, which is its replace key too, and the class's) were queued on herald.schedule.v1 (%d partitions) and indexed by the scheduler process (herald-scheduler group, Scheduler.Handle one record at a time, as herald run wires it) at %.0f/s (%.1f s; CPU per record: scheduler %.1f µs, redis-server %.1f µs); "+
			"Redis used_memory grew %.0f bytes per entry (%.0f MB); scheduler VmRSS %.0f MB when ready, %.0f MB after indexing, peak (VmHWM) %.0f MB. "+
			"Then %d reminders due at %d/s from %v after they were published (%s): lateness = arrival at a consumer of herald.push.v1 − due time, p50 %.1f ms, p99 %.1f ms, max %.1f ms (by the record's timestamp, when the scheduler published it: p50 %.1f ms, p99 %.1f ms); %d fired, %d missing, %d twice, %d not due; CPU per fired reminder (ticks included): scheduler %.1f µs, redis-server %.1f µs, in %.2f script calls (the firing loop's Due and Done per batch, and the herald-scheduler group applying each done mark it reads back). "+
			"Then %d bookings cancelled (one cancel record each, as the dispatcher writes it: timed, by the booking's cancel key and its untimed form): all %d withdrawn %.0f ms after the first was published, %.1f µs each (%.0f/s; CPU per cancel: scheduler %.1f µs, redis-server %.1f µs); Index.Pending fell from %d to %d, and Lookup finds none of %d sampled cancelled reminders and all %d sampled neighbours pending. "+
			"Then %d first confirmations' replace records (schedule: replace:, one beside each booking's schedules, withdrawing nothing): all applied %.0f ms after the first was published, %.1f µs each (CPU per record: scheduler %.1f µs, redis-server %.1f µs). "+
			"Ratio is the baseline's lateness p99 / herald's",
			sz.Waiting, recordBytes/max(1, sz.Waiting), parts, float64(sz.Waiting)/indexSecs, indexSecs, us(cpu1-cpu0, sz.Waiting), us(rcpu1-rcpu0, sz.Waiting),
			perEntry, (mem1-mem0)/(1<<20), rssReady, rssIndexed, hwm,
			sz.Firing, sz.Rate, lead.Round(100*time.Millisecond), indexedBy(unindexed), p50, p99, pmax, percentile(fired.stamped, 50), percentile(fired.stamped, 99),
			len(fired.late), fired.missing, fired.dups, fired.unknown, us(cpu3-cpu2, len(fired.late)), us(rcpu3-rcpu2, len(fired.late)), float64(calls3-calls2)/float64(max(1, len(fired.late))),
			sz.Cancels, sz.Cancels, cancelSecs*1000, cancelUS, float64(sz.Cancels)/cancelSecs, us(cpu5-cpu4, sz.Cancels), us(rcpu5-rcpu4, sz.Cancels),
			before, after, len(gone), len(kept),
			len(replaces), replaceSecs*1000, replaceSecs*1e6/float64(max(1, len(replaces))), us(cpu7-cpu6, len(replaces)), us(rcpu7-rcpu6, len(replaces))),
		BaselineNote: fmt.Sprintf("a 1 s poller over a table of due times (ZRANGEBYSCORE due ≤ now on a Redis sorted set, then HMGET of the notifications, one Kafka publish of them with the same producer, ZREM and HDEL; same Redis), its sorted set holding the same %d waiting reminders (written straight into Redis, as an app inserts rows; %.0f bytes per entry with its notification, measured on the firing set) and the same %d due at %d/s: %d fired, %d missing, %d twice; lateness p50 %.1f ms, p99 %.1f ms, max %.1f ms",
			sz.Waiting, naive.bytesPerEntry, sz.Firing, sz.Rate, len(naive.fired.late), naive.fired.missing, naive.fired.dups, b50, b99, percentile(naive.fired.late, 100)),
	}, nil
}

func indexedBy(unindexed int64) string {
	if unindexed > 0 {
		return fmt.Sprintf("%d of them not yet indexed when the first was due", unindexed)
	}
	return "all indexed before the first was due"
}

// dueOffset is when the i-th of a firing set is due after the first: rate
// per second, in whole milliseconds (the index's precision).
func dueOffset(i, rate int) time.Duration {
	return time.Duration(i*1000/rate) * time.Millisecond
}

// firingSet makes the firing set's records, due at the rate from lead on,
// and tells watch to expect them.
func firingSet(src *reminders, set string, sz scheduledSize, lead time.Duration, watch *firedWatch) (time.Time, []kafka.Message) {
	t0 := time.Now().Add(lead).Truncate(time.Millisecond)
	msgs := make([]kafka.Message, 0, sz.Firing)
	for i := range sz.Firing {
		m := src.reminder(set, i, t0.Add(dueOffset(i, sz.Rate)))
		watch.expect(m.id, m.due)
		msgs = append(msgs, m.record())
	}
	return t0, msgs
}

// cancelSet makes the cancel records of sz.Cancels waiting reminders of set,
// spread evenly over them, the index ids of a sample of them (gone) and of
// their next neighbours, which stay (kept).
func cancelSet(src *reminders, set string, sz scheduledSize, due func(int) time.Time) (msgs []kafka.Message, gone, kept []string, err error) {
	step := sz.Waiting / sz.Cancels
	every := max(1, sz.Cancels/200)
	now := time.Now()
	for k := range sz.Cancels {
		j := k * step
		m := src.reminder(set, j, due(j))
		// As the dispatcher writes a booking's cancellation: timed, by the
		// booking's key and its untimed form (templates.UntimedKey: the
		// key is also the reminder's replace path).
		tmpl, _, _ := strings.Cut(m.bookingKey(), "|")
		keys := []string{m.bookingKey(), templates.UntimedKey(tmpl, "booking_id", m.booking)}
		qm, err := schedule.Message(schedule.CancelRecord("evt_cxl_"+pad(k, 9), now, keys, now))
		if err != nil {
			return nil, nil, nil, err
		}
		msgs = append(msgs, kafka.Message{Topic: qm.Topic, Key: qm.Key, Value: qm.Value, Time: qm.Time})
		if k%every == 0 {
			gone = append(gone, m.entry)
			if step > 1 {
				next := src.reminder(set, j+1, due(j+1))
				kept = append(kept, next.entry)
			}
		}
	}
	return msgs, gone, kept, nil
}

// replaceSet makes n replace records, as the dispatcher writes for
// bookings confirmed for the first time: each under its own booking's key,
// with nothing waiting under it.
func replaceSet(n int) ([]kafka.Message, error) {
	now := time.Now()
	var msgs []kafka.Message
	for k := range n {
		r := schedule.ReplaceRecord("evt_rep_"+pad(k, 9), now, []string{templates.CancelKey("gym.booking.confirmed/reminder", "booking_id", "bkg_first_"+pad(k, 9))}, now)
		qm, err := schedule.Message(r)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, kafka.Message{Topic: qm.Topic, Key: qm.Key, Value: qm.Value, Time: qm.Time,
			Headers: []kafka.Header{{Key: schedule.HeaderReplace, Value: []byte("1")}}})
	}
	return msgs, nil
}

// waitPending polls Index.Pending every so often until it is want, and
// returns when it first moved from from and when it reached want. With
// by set, it gives up at by and returns a zero reached. It fails when
// Pending has not moved for 30 s.
func waitPending(ctx context.Context, idx schedule.Index, from, want int64, by time.Time, every time.Duration) (moved, reached time.Time, err error) {
	last, lastChange := from, time.Now()
	for {
		n, err := idx.Pending(ctx)
		now := time.Now()
		if err != nil {
			return moved, reached, err
		}
		if n != last {
			last, lastChange = n, now
			if moved.IsZero() {
				moved = now
			}
		}
		if n == want {
			if moved.IsZero() {
				moved = now
			}
			return moved, now, nil
		}
		if !by.IsZero() && now.After(by) {
			return moved, time.Time{}, nil
		}
		if now.Sub(lastChange) > 30*time.Second {
			return moved, reached, fmt.Errorf("index pending stuck at %d for 30 s, want %d", n, want)
		}
		select {
		case <-ctx.Done():
			return moved, reached, ctx.Err()
		case <-time.After(every):
		}
	}
}

// firedWatch records what arrives on a channel topic: when each expected
// reminder first arrived, its record's timestamp, and repeats.
type firedWatch struct {
	mu      sync.Mutex
	due     map[string]time.Time
	got     map[string]arrival
	dups    int
	unknown int
	done    chan struct{}
}

type arrival struct{ at, stamp time.Time }

func newFiredWatch() *firedWatch {
	return &firedWatch{due: map[string]time.Time{}, got: map[string]arrival{}, done: make(chan struct{})}
}

func (w *firedWatch) expect(id string, due time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.due[id] = due
}

func (w *firedWatch) handle(_ context.Context, m *queue.Message) error {
	now := time.Now()
	id := notificationID(m.Value)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.due[id]; !ok {
		w.unknown++ // a waiting reminder fired: it was not due
		return nil
	}
	if _, dup := w.got[id]; dup {
		w.dups++
		return nil
	}
	w.got[id] = arrival{at: now, stamp: m.Time}
	if len(w.got) == len(w.due) {
		close(w.done)
	}
	return nil
}

// wait returns when every expected reminder arrived, or at until.
func (w *firedWatch) wait(ctx context.Context, until time.Time) error {
	select {
	case <-w.done:
	case <-time.After(time.Until(until)):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// firedStats are a firing set's figures.
type firedStats struct {
	late, stamped   []time.Duration // arrival − due; record timestamp − due (sorted)
	missing, dups   int
	unknown         int
	firstAt, lastAt time.Time
}

func (w *firedWatch) stats() firedStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := firedStats{dups: w.dups, unknown: w.unknown}
	for id, due := range w.due {
		a, ok := w.got[id]
		if !ok {
			s.missing++
			continue
		}
		s.late = append(s.late, a.at.Sub(due))
		if !a.stamp.IsZero() {
			s.stamped = append(s.stamped, a.stamp.Sub(due))
		}
		if s.firstAt.IsZero() || a.at.Before(s.firstAt) {
			s.firstAt = a.at
		}
		if a.at.After(s.lastAt) {
			s.lastAt = a.at
		}
	}
	sortDurations(s.late)
	sortDurations(s.stamped)
	return s
}

// notificationID is the id of an encoded notification, in either form:
// the scheduler fires the binary one, the naive poller publishes the JSON
// it stored.
func notificationID(b []byte) string {
	n, err := notification.Parse(b)
	if err != nil {
		return ""
	}
	// A copy: n.ID is a substring of the whole record, which the watch
	// would otherwise keep alive for every fired reminder (tracker).
	return strings.Clone(n.ID)
}

// naiveResult is the baseline's figures.
type naiveResult struct {
	fired         firedStats
	bytesPerEntry float64
}

// runNaiveCron runs the baseline: reminders in a Redis sorted set of due
// times with their notifications in a hash, polled once a second by a loop
// that publishes what is due and deletes it. The sorted set holds the same
// waiting reminders as herald's index; the notifications of the waiting
// ones are left out of the hash, which the poller only reads for what is
// due (writing a million of them would add half a minute to the run and
// nothing to the lateness), so bytes per entry are measured on the firing
// set, which has both.
func runNaiveCron(ctx context.Context, env *Env, rc *redis.Client, brokers []string, src *reminders, sz scheduledSize, lead time.Duration) (naiveResult, error) {
	var res naiveResult
	env.Opts.logf("bench: scheduled baseline: %d reminders in a table polled every second", sz.Waiting)
	start := time.Now()
	const chunk = 10000
	for i := 0; i < sz.Waiting; i += chunk {
		zs := make([]redis.Z, 0, chunk)
		for j := i; j < min(i+chunk, sz.Waiting); j++ {
			m := src.reminder("rem", j, start.Add(48*time.Hour+time.Duration(j)*(5*24*time.Hour/time.Duration(sz.Waiting))))
			zs = append(zs, redis.Z{Score: float64(m.due.UnixMilli()), Member: m.id})
		}
		if err := rc.ZAdd(ctx, naiveDueKey, zs...).Err(); err != nil {
			return res, err
		}
	}

	watch := newFiredWatch()
	topic := naiveTopic(src.bases[0].n.Channel)
	wc, err := startConsumer(kafkarun.ConsumerConfig{Brokers: brokers, GroupID: scheduledWatchGroup + "-naive", Topics: []string{topic}, MaxInFlight: 256}, watch.handle)
	if err != nil {
		return res, err
	}
	defer stopAll([]*consumer{wc})
	if err := waitJoined(ctx, []*consumer{wc}); err != nil {
		return res, err
	}
	prod := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: brokers})
	defer prod.Close()
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	polled := make(chan error, 1)
	go func() { polled <- naivePoll(cctx, rc, prod, topic) }()

	mem0, err := redisInfo(ctx, rc, "memory", "used_memory")
	if err != nil {
		return res, err
	}
	t0 := time.Now().Add(lead).Truncate(time.Millisecond)
	for i := 0; i < sz.Firing; i += chunk {
		pipe := rc.Pipeline()
		zs := make([]redis.Z, 0, chunk)
		hs := make([]any, 0, 2*chunk)
		for j := i; j < min(i+chunk, sz.Firing); j++ {
			m := src.reminder("due", j, t0.Add(dueOffset(j, sz.Rate)))
			watch.expect(m.id, m.due)
			zs = append(zs, redis.Z{Score: float64(m.due.UnixMilli()), Member: m.id})
			hs = append(hs, m.id, m.notification())
		}
		pipe.ZAdd(ctx, naiveDueKey, zs...)
		pipe.HSet(ctx, naiveRecKey, hs...)
		if _, err := pipe.Exec(ctx); err != nil {
			return res, err
		}
	}
	mem1, err := redisInfo(ctx, rc, "memory", "used_memory")
	if err != nil {
		return res, err
	}
	res.bytesPerEntry = (mem1 - mem0) / float64(sz.Firing)
	env.Opts.logf("bench: scheduled baseline: loaded in %.1f s; %d due at %d/s from %v on", time.Since(start).Seconds(), sz.Firing, sz.Rate, time.Until(t0).Round(100*time.Millisecond))
	err = watch.wait(ctx, t0.Add(dueOffset(sz.Firing-1, sz.Rate)).Add(15*time.Second))
	time.Sleep(time.Second) // a duplicate would arrive by now
	stop()
	if perr := <-polled; err == nil {
		err = perr
	}
	res.fired = watch.stats()
	return res, err
}

// naivePoll is the cron job: once a second, every row due, published in
// one batch, then deleted.
func naivePoll(ctx context.Context, rc *redis.Client, prod *kafkarun.Producer, topic string) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now()
		ids, err := rc.ZRangeByScore(ctx, naiveDueKey, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10)}).Result()
		if err != nil || len(ids) == 0 {
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			continue
		}
		vals, err := rc.HMGet(ctx, naiveRecKey, ids...).Result()
		if err != nil {
			return err
		}
		msgs := make([]queue.Message, 0, len(ids))
		for i, v := range vals {
			if s, ok := v.(string); ok {
				msgs = append(msgs, queue.Message{Topic: topic, Key: []byte(ids[i]), Value: []byte(s), Time: now})
			}
		}
		if err := prod.Publish(ctx, msgs...); err != nil {
			return err
		}
		pipe := rc.Pipeline()
		pipe.ZRem(ctx, naiveDueKey, toAny(ids)...)
		pipe.HDel(ctx, naiveRecKey, ids...)
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// queueReminders queues count reminders of set on the schedule topic,
// making each chunk while the previous one is written, and returns their
// bytes.
func queueReminders(ctx context.Context, brokers []string, src *reminders, set string, count int, due func(int) time.Time) (int, error) {
	const chunk = 20000
	chunks := make(chan []kafka.Message, 1)
	total := 0
	go func() {
		defer close(chunks)
		for i := 0; i < count; i += chunk {
			msgs := make([]kafka.Message, 0, min(chunk, count-i))
			for j := i; j < min(i+chunk, count); j++ {
				m := src.reminder(set, j, due(j))
				msgs = append(msgs, m.record())
				total += len(msgs[len(msgs)-1].Value)
			}
			select {
			case chunks <- msgs:
			case <-ctx.Done():
				return
			}
		}
	}()
	for msgs := range chunks {
		if err := preload(ctx, brokers, msgs); err != nil {
			go func() {
				for range chunks { // let the maker finish
				}
			}()
			return 0, err
		}
	}
	return total, ctx.Err()
}

// flushSlowly empties Redis with a client that waits as long as that
// takes, for the next scenario; not when the bench was interrupted (ctx
// done), since nothing follows and a Ctrl-C has stopped redis-server too:
// the client's dial retries held the exit for 24 s and filled stderr.
func flushSlowly(ctx context.Context, env *Env) {
	if ctx.Err() != nil {
		return
	}
	opts := env.Redis.Options()
	opts.ReadTimeout = 2 * time.Minute
	c := redis.NewClient(opts)
	defer c.Close()
	_ = c.FlushAll(context.Background()).Err()
}

// redisInfo reads a numeric field of a section of INFO.
func redisInfo(ctx context.Context, rc *redis.Client, section, field string) (float64, error) {
	s, err := rc.Info(ctx, section).Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == field {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("redis INFO %s has no %s", section, field)
}

// redisScriptCalls is how many scripts Redis has run (EVALSHA and EVAL).
func redisScriptCalls(ctx context.Context, rc *redis.Client) int64 {
	s, err := rc.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0
	}
	var n int64
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || k != "cmdstat_evalsha" && k != "cmdstat_eval" {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
		c, _ := strconv.ParseInt(calls, 10, 64)
		n += c
	}
	return n
}

// redisCPU is the CPU time redis-server has used (all its threads).
func redisCPU(ctx context.Context, rc *redis.Client) time.Duration {
	var sum float64
	for _, f := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, err := redisInfo(ctx, rc, "cpu", f)
		if err != nil {
			return 0
		}
		sum += v
	}
	return time.Duration(sum * float64(time.Second))
}
