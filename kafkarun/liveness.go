package kafkarun

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/queue"
)

// Liveness answers /healthz: is every consume loop of this process making
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
type Liveness struct {
	mu     sync.Mutex
	groups map[string]*progress
	// Window is the stall window (StallWindow); set once before the
	// consumers run.
	Window time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// LagEvery is the lag poll interval; zero is 15s.
	LagEvery time.Duration

	// members reports the consumers' group standing (nil before they
	// start); unjoinedLimit is how long one may hold no generation.
	members       func() []Membership
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
func GroupLimit(session, rebalance time.Duration) time.Duration {
	return 3 * (session + rebalance)
}

// setMembers installs the consumers' standing and the limit; call once,
// before the consumers start.
func (l *Liveness) SetMembers(members func() []Membership, limit time.Duration, log *zap.Logger) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.members, l.unjoinedLimit, l.log = members, limit, log
}

// stallWindow is how long a consumer may be busy without finishing a
// handler call before /healthz fails. A call legitimately runs up to a few
// provider attempts (3 quick attempts of sendTimeout each, with backoff);
// waits by design are not counted.
func StallWindow(sendTimeout time.Duration) time.Duration {
	return 4*sendTimeout + 30*time.Second
}

type partitionKey struct {
	topic string
	part  int
}

// progress is one consumer group's state in this process.
type progress struct {
	l       *Liveness
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

func (l *Liveness) clock() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// group returns the progress of group, registering it with its topics.
func (l *Liveness) group(group string, topics []string) *progress {
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

func (l *Liveness) Track(group string, topics []string, h queue.Handler) queue.Handler {
	p := l.group(group, topics)
	var tracked trackedContexts
	return func(ctx context.Context, m *queue.Message) error {
		p.change(func() { p.active++ })
		defer p.change(func() { p.active--; p.lastOK = p.l.clock() })
		return h(tracked.of(ctx, p), m)
	}
}

// trackedContexts are handler contexts with a group's progress as their
// wait tracker, made once per context: the consumer hands every record of
// a partition the same one, and a new context per record was an
// allocation per record (issue 14). At most maxTracked are kept; past
// that the cache starts again (those of ended partitions go with it).
type trackedContexts struct {
	m sync.Map // context.Context → the same with the tracker
	n atomic.Int32
}

const maxTracked = 1024

func (t *trackedContexts) of(ctx context.Context, p *progress) context.Context {
	// Only pointers are kept: a struct "comparable" to reflect may still
	// hold an uncomparable value in an interface field (the standard
	// library's WithoutCancel context does) and panic as a map key. The
	// consumer's contexts are pointers.
	if ctx == nil || reflect.TypeOf(ctx).Kind() != reflect.Pointer {
		return queue.WithWaitTracker(ctx, p)
	}
	if c, ok := t.m.Load(ctx); ok {
		return c.(context.Context)
	}
	c := queue.WithWaitTracker(ctx, p)
	if t.n.Add(1) > maxTracked {
		t.m.Clear()
		t.n.Store(1)
	}
	t.m.Store(ctx, c)
	return c
}

// gate wraps a group's consumer gate (a circuit breaker) so that records
// held at it count as waiting by design: a channel paused for a provider
// outage of many minutes must not fail liveness and be restarted. nil
// stays nil.
func (l *Liveness) Gate(group string, g Gate) Gate {
	if g == nil {
		return nil
	}
	return &pausedGate{Gate: g, p: l.group(group, nil)}
}

type pausedGate struct {
	Gate
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
func (l *Liveness) Observe(group string, next Observer) Observer {
	return &progressObserver{Observer: next, p: l.group(group, nil)}
}

type progressObserver struct {
	Observer
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
func (l *Liveness) ReportLag(pl PartitionLag) {
	l.mu.Lock()
	p := l.groups[pl.Group]
	l.mu.Unlock()
	if p != nil {
		p.change(func() { p.lag[partitionKey{pl.Topic, pl.Partition}] = pl.Lag })
	}
}

// ForgetLag drops the lag last reported for a partition that no longer
// exists (kafkarun.LagConfig.Forget): records waiting on a deleted topic
// are not work the group can finish, and kept, they made it look stalled.
func (l *Liveness) ForgetLag(pl PartitionLag) {
	l.mu.Lock()
	p := l.groups[pl.Group]
	l.mu.Unlock()
	if p != nil {
		p.change(func() { delete(p.lag, partitionKey{pl.Topic, pl.Partition}) })
	}
}

// check returns an error naming every stalled consumer group.
func (l *Liveness) Check() error {
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
		if stuck := now.Sub(p.lastOK); stuck > l.Window {
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
func (l *Liveness) checkMembers(now time.Time) []error {
	if l.members == nil {
		return nil
	}
	var errs []error
	for _, m := range l.members() {
		over := !m.Joined && !m.Unreachable && m.Unjoined(now) > l.unjoinedLimit
		if over {
			errs = append(errs, fmt.Errorf("%s: %s, over the %v limit", m.Group, m.Describe(now), l.unjoinedLimit))
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
func (l *Liveness) GroupsAndTopics() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for g, p := range l.groups {
		out[g] = p.topics
	}
	return out
}

// Paused reports whether group has records held at its gate.
func (l *Liveness) Paused(group string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.groups[group]
	return p != nil && p.paused > 0
}

// Describe says why a consumer holds no generation, for /readyz,
// /healthz and the log.
func (m Membership) Describe(now time.Time) string {
	s := fmt.Sprintf("no consumer-group generation for %v", m.Unjoined(now).Round(time.Second))
	if m.JoinErrors > 0 {
		s += fmt.Sprintf(" (%d failed joins; last: %v)", m.JoinErrors, m.LastJoinError)
	}
	return s
}

// DefaultWindow sets the stall window to d unless one is set already.
func (l *Liveness) DefaultWindow(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Window == 0 {
		l.Window = d
	}
}
