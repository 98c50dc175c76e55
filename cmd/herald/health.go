package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
)

// liveness answers /healthz: is every consume loop of this process making
// progress, or idle because there is nothing to do? It is fed by a wrapper
// around each group's handler (calls in progress and finished), by the
// handlers themselves (queue.Waiting: waits by design), by the runtime's
// observer (partitions held) and by the lag poller (records waiting on
// them).
//
// A consumer is busy when a handler call is running and not waiting by
// design, or when no call is running although a partition it holds has
// records waiting (a wedged fetch loop). It is stalled when it has been busy
// for the whole stall window without one handler call finishing. Kafka or
// Redis being down is not a stall: handler calls fail and return, which is
// progress as far as a restart is concerned (it would not help), and
// /readyz reports the outage.
//
// The zero value is ready to use.
type liveness struct {
	mu     sync.Mutex
	groups map[string]*progress
	// window is the stall window; set once before the fleet runs.
	window time.Duration
	now    func() time.Time
	// lagEvery is the lag poll interval; zero is 15s.
	lagEvery time.Duration

	// members reports the consumers' group standing (nil before they
	// start); unjoinedLimit is how long one may hold no generation.
	members       func() []kafkarun.Membership
	unjoinedLimit time.Duration
	// overLimit: the groups already logged as over unjoinedLimit.
	overLimit map[string]bool
	log       *zap.Logger
}

// groupLimit is how long a consumer may hold no generation of its group,
// while the brokers answer, before /healthz fails and the pod is
// restarted: three rounds of a dead member's session expiring and the
// group rebalancing around it (60 s with the default 10 s timeouts). A
// healthy group re-forms within one round of either; a rolling deploy or a
// crash loop elsewhere in the fleet costs a few rounds; a group that has
// not re-formed in three is wedged (issue 10 saw groups that rebalanced
// for minutes and never re-formed) and a new process, with a new member
// and new connections, is the remedy left.
func groupLimit(session, rebalance time.Duration) time.Duration {
	return 3 * (session + rebalance)
}

// setMembers installs the consumers' standing and the limit; call once,
// before the consumers start.
func (l *liveness) setMembers(members func() []kafkarun.Membership, limit time.Duration, log *zap.Logger) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.members, l.unjoinedLimit, l.log = members, limit, log
}

// stallWindow is how long a consumer may be busy without finishing a
// handler call before /healthz fails. A call legitimately runs up to a few
// provider attempts (3 quick attempts of sendTimeout each, with backoff);
// waits by design are not counted.
func stallWindow(sendTimeout time.Duration) time.Duration {
	return 4*sendTimeout + 30*time.Second
}

type partitionKey struct {
	topic string
	part  int
}

// progress is one consumer group's state in this process.
type progress struct {
	l       *liveness
	group   string
	topics  []string
	active  int // handler calls running
	waiting int // of which waiting by design
	paused  int // records held at the consumer's gate (circuit breaker open)
	// lastOK is the last time the consumer was not busy or finished a
	// handler call.
	lastOK   time.Time
	assigned map[partitionKey]bool
	lag      map[partitionKey]int64
}

func (l *liveness) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// group returns the progress of group, registering it with its topics.
func (l *liveness) group(group string, topics []string) *progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.groups == nil {
		l.groups = map[string]*progress{}
	}
	p := l.groups[group]
	if p == nil {
		p = &progress{l: l, group: group, topics: topics, lastOK: l.clock(),
			assigned: map[partitionKey]bool{}, lag: map[partitionKey]int64{}}
		l.groups[group] = p
	}
	return p
}

// track wraps a group's handler so that /healthz sees its calls and waits.
func (f *fleet) track(group string, topics []string, h queue.Handler) queue.Handler {
	f.live.mu.Lock()
	if f.live.window == 0 {
		f.live.window = stallWindow(f.cfg.SendTimeout)
	}
	f.live.mu.Unlock()
	return f.live.track(group, topics, h)
}

func (l *liveness) track(group string, topics []string, h queue.Handler) queue.Handler {
	p := l.group(group, topics)
	return func(ctx context.Context, m *queue.Message) error {
		p.change(func() { p.active++ })
		defer p.change(func() { p.active--; p.lastOK = p.l.clock() })
		return h(queue.WithWaitTracker(ctx, p), m)
	}
}

// gate wraps a group's consumer gate (a circuit breaker) so that records
// held at it count as waiting by design: a channel paused for a provider
// outage of many minutes must not fail liveness and be restarted. nil
// stays nil.
func (l *liveness) gate(group string, g kafkarun.Gate) kafkarun.Gate {
	if g == nil {
		return nil
	}
	return &pausedGate{Gate: g, p: l.group(group, nil)}
}

type pausedGate struct {
	kafkarun.Gate
	p *progress
}

// Passing lets the runtime skip the wait, as the wrapped gate does.
func (g *pausedGate) Passing() bool {
	pg, ok := g.Gate.(interface{ Passing() bool })
	return ok && pg.Passing()
}

func (g *pausedGate) Wait(ctx context.Context) error {
	if g.Passing() {
		return g.Gate.Wait(ctx)
	}
	g.p.change(func() { g.p.paused++ })
	defer g.p.change(func() { g.p.paused--; g.p.lastOK = g.p.l.clock() })
	return g.Gate.Wait(ctx)
}

// observe wraps a group's runtime observer so that liveness knows which
// partitions this process holds.
func (l *liveness) observe(group string, next kafkarun.Observer) kafkarun.Observer {
	return &progressObserver{Observer: next, p: l.group(group, nil)}
}

type progressObserver struct {
	kafkarun.Observer
	p *progress
}

func (o *progressObserver) Assigned(topic string, partition int) {
	o.p.change(func() { o.p.assigned[partitionKey{topic, partition}] = true })
	o.Observer.Assigned(topic, partition)
}

func (o *progressObserver) Revoked(topic string, partition int) {
	o.p.change(func() { delete(o.p.assigned, partitionKey{topic, partition}) })
	o.Observer.Revoked(topic, partition)
}

func (p *progress) WaitBegin() { p.change(func() { p.waiting++ }) }
func (p *progress) WaitEnd()   { p.change(func() { p.waiting-- }) }

// change applies fn under the lock, first recording that the consumer was
// not busy up to now if so (state only changes here, so that is exact).
func (p *progress) change(fn func()) {
	p.l.mu.Lock()
	defer p.l.mu.Unlock()
	if !p.busy() {
		p.lastOK = p.l.clock()
	}
	fn()
}

func (p *progress) busy() bool {
	if p.paused > 0 {
		return false // paused by design: the provider is down, restarting would not help
	}
	if p.active > p.waiting {
		return true
	}
	if p.active > 0 {
		return false // every running call is waiting by design
	}
	for k := range p.assigned {
		if p.lag[k] > 0 {
			return true
		}
	}
	return false
}

// reportLag records a partition's lag from the lag poller.
func (l *liveness) reportLag(pl kafkarun.PartitionLag) {
	l.mu.Lock()
	p := l.groups[pl.Group]
	l.mu.Unlock()
	if p != nil {
		p.change(func() { p.lag[partitionKey{pl.Topic, pl.Partition}] = pl.Lag })
	}
}

// check returns an error naming every stalled consumer group.
func (l *liveness) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	var errs []error
	names := make([]string, 0, len(l.groups))
	for g := range l.groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		p := l.groups[g]
		if !p.busy() {
			p.lastOK = now
			continue
		}
		if stuck := now.Sub(p.lastOK); stuck > l.window {
			errs = append(errs, fmt.Errorf("%s: no progress for %v with work pending (%d handler calls running, %d waiting by design)",
				g, stuck.Round(time.Second), p.active, p.waiting))
		}
	}
	return errors.Join(append(errs, l.checkMembers(now)...)...)
}

// checkMembers returns an error for every consumer that has held no
// generation for longer than unjoinedLimit although the brokers answer
// (an unreachable broker is an outage for /readyz: a new process would
// not reach it either). It logs each group once when it crosses the
// limit, naming the last join error. Called with l.mu held.
func (l *liveness) checkMembers(now time.Time) []error {
	if l.members == nil {
		return nil
	}
	var errs []error
	for _, m := range l.members() {
		over := !m.Joined && !m.Unreachable && m.Unjoined(now) > l.unjoinedLimit
		if over {
			errs = append(errs, fmt.Errorf("%s: %s, over the %v limit", m.Group, describeUnjoined(m, now), l.unjoinedLimit))
		}
		if over != l.overLimit[m.Group] {
			if l.overLimit == nil {
				l.overLimit = map[string]bool{}
			}
			l.overLimit[m.Group] = over
			if over && l.log != nil {
				l.log.Error("consumer group has held no generation for longer than the liveness limit; /healthz fails so that the process is restarted",
					zap.String("group", m.Group), zap.Duration("without_generation", m.Unjoined(now).Round(time.Second)),
					zap.Duration("limit", l.unjoinedLimit), zap.Int("failed_joins", m.JoinErrors), zap.NamedError("last_join_error", m.LastJoinError))
			}
		}
	}
	return errs
}

// groupsAndTopics lists the groups this process consumes, for the lag poller.
func (l *liveness) groupsAndTopics() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for g, p := range l.groups {
		out[g] = p.topics
	}
	return out
}

// watchLag polls the consumer lag of every group this process runs until
// ctx ends, exporting herald_consumer_lag and feeding liveness and
// herald_partition_stalled_seconds. It talks to
// the brokers through conn, the fleet's TLS/SASL connection.
func (f *fleet) watchLag(ctx context.Context, conn *kafkarun.Connection) {
	gauge, err := obs.RegisterConsumerLag(f.metrics.Registry)
	if err != nil {
		f.log.Error("consumer lag metric", zap.Error(err))
		return
	}
	lp, err := kafkarun.NewLagPoller(kafkarun.LagConfig{
		Brokers: f.cfg.KafkaBrokers, Transport: conn.Transport, Groups: f.live.groupsAndTopics(), Interval: f.live.lagEvery, Logger: f.log,
		Report: func(l kafkarun.PartitionLag) {
			gauge.WithLabelValues(l.Group, l.Topic, strconv.Itoa(l.Partition)).Set(float64(l.Lag))
			f.metrics.Stalls.Lag(l.Group, l.Topic, l.Partition, l.Committed, l.Lag)
			f.live.reportLag(l)
		},
	})
	if err != nil {
		f.log.Error("consumer lag poller", zap.Error(err))
		return
	}
	lp.Run(ctx)
}
