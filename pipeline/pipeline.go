// Package pipeline is the order of the wrappers of each role, written once:
// Dispatch for the dispatcher, Deliver for a channel. herald run, herald
// dev and herald bench all build their stages here, so what is measured is
// what runs, and a wrapper is added or moved in one place.
//
// A record meets a channel stage's parts in this order, outermost first:
//
//	liveness       counts the record in flight for /healthz
//	tracing        the "deliver <channel>" span, continued from the record's headers
//	worker         claim → suppression → render → rate limit → send → record → receipt
//	tracing        the "send <channel>" span around the provider call
//	guard          the provider's circuit breaker (or failover between providers)
//	provider       the channel's sender (its descriptor's New)
//
// and the consumer that feeds it waits, before fetching, on the gate: the
// guard (closed while no provider can send), behind liveness's pause
// bookkeeping.
package pipeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/caps"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/live"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/protect"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/receipts"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
	"github.com/gymhq/herald/tracing"
	"github.com/gymhq/herald/worker"
)

// Common are the parts every role's stage is built from.
type Common struct {
	Config    *config.Config // leases, timeouts, the retry ladder, breakers
	Publisher queue.Publisher
	Tracing   *tracing.Tracing
	Metrics   *obs.Metrics
	Logger    *zap.Logger
	// Liveness, when set, watches each stage for a wedge (herald run's
	// /healthz; the bench's, which nothing polls, so that it pays the
	// same bookkeeping per record).
	Liveness Liveness
}

// Liveness is what watches a stage for herald run's /healthz.
type Liveness interface {
	// Track counts the records the handler holds.
	Track(group string, topics []string, h queue.Handler) queue.Handler
	// Gate tells the watcher when the consumer is paused on purpose.
	Gate(group string, g kafkarun.Gate) kafkarun.Gate
}

// Stage is one role's consumer-side parts.
type Stage struct {
	Group   string
	Topics  []string
	Handler queue.Handler
	// Gate is waited on before each fetch; nil never pauses.
	Gate kafkarun.Gate
	// MaxInFlight, when set, bounds the records the stage holds at once
	// instead of HERALD_MAX_IN_FLIGHT: a low-priority flow takes few, so
	// that a flood of it never queues the high one behind it for Redis.
	MaxInFlight int
	// Conflate, when set, conflates the stage's records
	// (kafkarun.ConsumerConfig.Conflate).
	Conflate kafkarun.Versioned
}

// Guard is a channel's provider protection: a Sender that refuses calls
// while its provider is failing (failure.IsPaused), and the Gate that holds
// the channel's consumer meanwhile.
type Guard interface {
	channels.Sender
	kafkarun.Gate
}

// Dispatch builds the dispatcher's stage.
func Dispatch(c Common, planner *dispatcher.Planner) Stage {
	d := &dispatcher.Dispatcher{
		Planner: planner, Publisher: c.Publisher,
		Logger: c.logger().With(zap.String("role", "dispatcher")), Metrics: c.Metrics,
	}
	var h queue.Handler = d.Handle
	h = c.Tracing.Handler("dispatch", h)
	// The booking service's events, and the ones herald raises itself.
	return c.watched(Stage{Group: topics.GroupDispatch, Topics: []string{c.Config.EventsTopic, topics.Derived}, Handler: h})
}

// Channel is what one channel's stage is built from besides Common.
type Channel struct {
	Name notification.Channel
	// Guard wraps the provider: NewBreaker's protect.Sender, or a
	// failover.Sender over several providers.
	Guard        Guard
	Renderer     worker.Renderer
	Store        dedupe.Store
	Suppressions suppress.Store
	Limiter      worker.Limiter // nil: unlimited
	Receipts     receipts.Store // nil: the channel has none
	Owner        string
	// Priority, when set, marks the channel's flow as the high one.
	Priority *Priority
	// Wait, when set, holds what is not yet due in the scheduler (retries,
	// caps with policy defer): worker.Config's Defer, Caps, CapOf.
	Wait *Wait
	// OptOut and OptedOut are worker.Config's.
	OptOut   func(ctx context.Context, n *notification.Notification) error
	OptedOut func(ctx context.Context, n *notification.Notification) (bool, error)
}

// Wait is how a channel's worker hands notifications to the scheduler
// and counts frequency caps.
type Wait struct {
	Defer    func(ctx context.Context, n *notification.Notification, due time.Time, topic string) error
	Caps     caps.Counter
	CapOf    func(n *notification.Notification) (caps.Limit, string, bool)
	QuietEnd func(ctx context.Context, n *notification.Notification, at time.Time) (time.Time, error)
}

// NewPlanner is the dispatcher's planner on cfg: its SMS policy, its
// quiet hours, and how far ahead it may schedule (schedule.MaxAhead; the
// scheduler writes a record again before the topic drops it). choices looks
// people's stored preferences up (prefs.PlanChoices); nil for none.
func NewPlanner(cfg *config.Config, routes dispatcher.Routes, now func() time.Time,
	choices func(ctx context.Context, ids []string) (map[string]templates.Choices, error)) *dispatcher.Planner {
	return &dispatcher.Planner{Templates: routes, Now: now, SMS: cfg.SMSPolicy(), Choices: choices,
		NoQuietHours: cfg.Schedule.QuietHours == config.Off, MaxAhead: schedule.MaxAhead}
}

// NewWait is a channel's Wait on c: what is not yet due goes to the
// scheduler through c's publisher, and, unless c's configuration turns
// frequency caps off, counter counts the caps capOf finds. Unless it turns
// quiet hours off, quietEnd (nil for none) keeps a cap's release out of
// them.
func NewWait(c Common, counter caps.Counter, capOf func(n *notification.Notification) (caps.Limit, string, bool),
	quietEnd func(ctx context.Context, n *notification.Notification, at time.Time) (time.Time, error)) *Wait {
	w := &Wait{Defer: func(ctx context.Context, n *notification.Notification, due time.Time, topic string) error {
		return schedule.Defer(ctx, c.Publisher, c.Metrics, n, due, topic, time.Now())
	}}
	if c.Config.Schedule.FrequencyCaps != config.Off {
		w.Caps, w.CapOf = counter, capOf
		if c.Config.Schedule.QuietHours != config.Off {
			w.QuietEnd = quietEnd
		}
	}
	return w
}

// Schedule builds the scheduler's stage: the herald-scheduler group
// applying the schedule topic to the index (its firing loop runs beside
// it, schedule.Scheduler.Run).
func Schedule(c Common, s *schedule.Scheduler) Stage {
	var h queue.Handler = s.Handle
	h = c.Tracing.Handler("schedule", h)
	return c.watched(Stage{Group: topics.GroupSchedule, Topics: []string{topics.Schedule}, Handler: h})
}

// Deliver builds a channel's stage, innermost part first.
func Deliver(c Common, ch Channel) (Stage, error) {
	if ch.Guard == nil {
		return Stage{}, fmt.Errorf("pipeline: channel %s has no guarded provider", ch.Name)
	}
	cfg := c.Config
	var s channels.Sender = ch.Guard
	s = c.Tracing.Sender(string(ch.Name), s)
	provider := ""
	if d := channels.Lookup(ch.Name); d != nil {
		provider = d.Provider
	}
	wc := worker.Config{
		Channel: ch.Name, Sender: s, Renderer: ch.Renderer, Store: ch.Store, Publisher: c.Publisher, Owner: ch.Owner,
		Suppressions: ch.Suppressions, Limiter: ch.Limiter, Receipts: ch.Receipts, Provider: provider,
		Lease: cfg.IdempotencyLease, SendTimeout: cfg.SendTimeout,
		MaxAttempts: cfg.RetryMaxAttempts, MaxAge: cfg.RetryMaxAge, OptOut: ch.OptOut, OptedOut: ch.OptedOut,
		Logger: c.logger().With(zap.String("role", string(ch.Name))), Metrics: c.Metrics,
	}
	if ch.Wait != nil {
		wc.Defer, wc.Caps, wc.CapOf, wc.QuietEnd = ch.Wait.Defer, ch.Wait.Caps, ch.Wait.CapOf, ch.Wait.QuietEnd
	}
	w, err := worker.New(wc)
	if err != nil {
		return Stage{}, err
	}
	var h queue.Handler = w.Handle
	if ch.Priority != nil {
		h = ch.Priority.High(h)
	}
	h = c.Tracing.Handler("deliver "+string(ch.Name), h)
	return c.watched(Stage{
		Group: topics.Group(ch.Name), Topics: []string{topics.Channel(ch.Name), topics.Retry(ch.Name)},
		Handler: h, Gate: ch.Guard,
	}), nil
}

// watched puts liveness around a stage, outermost.
func (c Common) watched(s Stage) Stage {
	if c.Liveness == nil {
		return s
	}
	s.Handler = c.Liveness.Track(s.Group, s.Topics, s.Handler)
	s.Gate = c.Liveness.Gate(s.Group, s.Gate)
	return s
}

func (c Common) logger() *zap.Logger {
	if c.Logger == nil {
		return zap.NewNop()
	}
	return c.Logger
}

// NewBreaker guards a single provider with a circuit breaker configured by
// HERALD_BREAKER_FAILURES and HERALD_BREAKER_OPEN_FOR, reporting its state
// to the metrics and the log.
func NewBreaker(c Common, ch notification.Channel, provider channels.Sender) (*Breaker, error) {
	name := string(ch)
	log := c.logger().With(zap.String("channel", name))
	var onState func(from, to protect.State)
	if c.Metrics != nil {
		gauge := c.Metrics.Protect.BreakerState.WithLabelValues(name)
		onState = func(from, to protect.State) {
			gauge.Set(float64(to))
			c.Metrics.Protect.BreakerTransitions.WithLabelValues(name, to.String()).Inc()
			if to == protect.Open {
				log.Warn("provider circuit breaker opened; channel paused", zap.String("from", from.String()), zap.Duration("probe_in", c.Config.BreakerOpenFor))
			} else {
				log.Info("provider circuit breaker "+to.String(), zap.String("from", from.String()))
			}
		}
	}
	b, err := protect.NewBreaker(protect.BreakerConfig{
		Name: name, Failures: c.Config.BreakerFailures, OpenFor: c.Config.BreakerOpenFor, OnState: onState,
	})
	if err != nil {
		return nil, fmt.Errorf("HERALD_BREAKER_FAILURES/HERALD_BREAKER_OPEN_FOR: %w", err)
	}
	return &Breaker{Sender: protect.Sender{Next: provider, Breaker: b}}, nil
}

// Breaker is a provider behind one circuit breaker: a Guard.
type Breaker struct {
	protect.Sender
}

// Wait implements kafkarun.Gate: it returns once the breaker lets a call
// through.
func (b *Breaker) Wait(ctx context.Context) error { return b.Breaker.Wait(ctx) }

// Passing reports that Wait would return at once.
func (b *Breaker) Passing() bool { return b.Breaker.Passing() }

// Aggregate builds the attendance stage (package live): the booking
// events again, in a consumer group of their own, so that keeping
// classes' attendance never holds up the dispatcher, nor the reverse; it
// yields to prio's flow.
func Aggregate(c Common, a *live.Aggregator, prio *Priority) Stage {
	var h queue.Handler = a.Handle
	h = c.Tracing.Handler("attendance", h)
	s := Stage{Group: topics.GroupAttendance, Topics: []string{c.Config.EventsTopic}, Handler: h}
	if prio != nil {
		s.Gate, s.MaxInFlight = prio.Low(), LowMaxInFlight
	}
	return c.watched(s)
}

// Fanout builds the dashboard stage: attendance changes to staff's live
// views, in a group of its own that yields to prio's flow (the inapp
// channel's notifications to the same feeds).
func Fanout(c Common, f *live.Fanout, prio *Priority) Stage {
	var h queue.Handler = f.Handle
	h = c.Tracing.Handler("live", h)
	s := Stage{Group: topics.GroupLive, Topics: []string{topics.Live}, Handler: h, Conflate: live.Version}
	// The conflated records' series exists from the start, at 0, as a
	// group's other series do (operations.md), not from the first burst.
	c.Metrics.Superseded.WithLabelValues(s.Group, topics.Live)
	if prio != nil {
		s.Gate, s.MaxInFlight = prio.Low(), LowMaxInFlight
	}
	return c.watched(s)
}

// Priority orders two flows in one process: while the high one has
// records in hand, the low one's consumer waits before each record — up
// to lowMaxWait, so a flood of high never stops the low one outright. A
// high record in a deliberate wait (queue.Waiting: another worker's lease
// on the same notification, a retry's not-before time, a store coming
// back) does not count: it competes for nothing, and one notification
// waiting out a killed worker's 45 s lease held the dashboards to one
// record per lowMaxWait for as long (an outside tester's kill loop). A
// wait for the channel's rate limit is not marked so, and still counts.
type Priority struct {
	busy atomic.Int64
}

// lowMaxWait bounds one wait of the low flow.
const lowMaxWait = 200 * time.Millisecond

// LowMaxInFlight is the records a low-priority stage holds at once.
const LowMaxInFlight = 16

// High wraps the high flow's handler.
func (p *Priority) High(h queue.Handler) queue.Handler {
	return func(ctx context.Context, m *queue.Message) error {
		p.busy.Add(1)
		y := &yielding{p: p, next: queue.Tracker(ctx)}
		defer y.end()
		return h(queue.WithWaitTracker(ctx, y), m)
	}
}

// yielding is a high record's wait tracker: while the record waits by
// design it is not busy, and the tracker before it (liveness's) hears of
// the wait as well. The record counts once whatever its waits do: waits
// that overlap, a wait left open, a wait ended twice or one begun on its
// context after the handler returned neither take another record off the
// count nor leave one on it.
type yielding struct {
	p    *Priority
	next queue.WaitTracker

	mu    sync.Mutex
	depth int  // waits open
	ended bool // the handler returned
}

func (y *yielding) WaitBegin() {
	y.mu.Lock()
	if !y.ended {
		if y.depth++; y.depth == 1 {
			y.p.busy.Add(-1)
		}
	}
	y.mu.Unlock()
	if y.next != nil {
		y.next.WaitBegin()
	}
}

func (y *yielding) WaitEnd() {
	y.mu.Lock()
	if !y.ended && y.depth > 0 {
		if y.depth--; y.depth == 0 {
			y.p.busy.Add(1)
		}
	}
	y.mu.Unlock()
	if y.next != nil {
		y.next.WaitEnd()
	}
}

// end takes the record off the count as its handler returns, unless an
// open wait already had.
func (y *yielding) end() {
	y.mu.Lock()
	y.ended = true
	if y.depth == 0 {
		y.p.busy.Add(-1)
	}
	y.mu.Unlock()
}

// Low is the low flow's gate.
func (p *Priority) Low() kafkarun.Gate { return lowGate{p} }

type lowGate struct{ p *Priority }

func (g lowGate) Passing() bool { return g.p.busy.Load() == 0 }

func (g lowGate) Wait(ctx context.Context) error {
	deadline := time.Now().Add(lowMaxWait)
	for g.p.busy.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}
