package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/gymhq/herald/attendance"
	"github.com/gymhq/herald/caps"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/inapp"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/gateway"
	"github.com/gymhq/herald/internal/await"
	"github.com/gymhq/herald/internal/rpipe"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/live"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/pipeline"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/receipts"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/tracing"
)

// fleet is every role one process runs, wired from concrete parts. It is
// the only place where Kafka, Redis, templates and providers meet.
type fleet struct {
	cfg       *config.Config
	log       *zap.Logger
	metrics   *obs.Metrics
	templates *templates.Live
	tracing   *tracing.Tracing
	store     dedupe.Store
	senders   map[notification.Channel]channels.Sender
	// ping checks the idempotency store for /readyz; nil means always ready.
	ping func(context.Context) error
	// redis is the Redis client the fleet waits for at start; nil when the
	// store is in process.
	redis redis.UniversalClient
	// pipes carry the idempotency store's calls and the suppression list's
	// lookups in shared pipelines on redis; nil when redis is.
	pipes     *rpipe.Pipes
	redisAddr string // HERALD_REDIS_URL, password masked
	// redisCheck is the deployment and eviction checks, run once Redis
	// answers at start (a refusal stops the process) and by /readyz.
	redisCheck *dedupe.Checker
	// waiting is what the fleet still waits for before it starts (start.go).
	waiting await.Waiter
	// prot is suppressions and provider protection (protect.go).
	prot protection
	// receipts are the delivery-receipt stores of the channels that have
	// them, and routes the HTTP endpoints their providers call
	// (receipts.go).
	receipts map[notification.Channel]receipts.Store
	routes   map[string]http.Handler
	// feed is the in-app feeds (the inapp channel writes, the gateway
	// reads); gateway is the gateway role's, nil when it does not run
	// (gateway.go).
	feed    feed.Store
	gateway *gateway.Gateway
	// attendance is classes' attendance (package live), Redis or memory
	// like feed.
	attendance attendance.Store
	// schedIndex is the scheduler's index and caps the frequency-cap
	// counter (schedule.go), Redis or memory like feed.
	schedIndex schedule.Index
	caps       caps.Counter
	// scheduler is the dispatcher role's, nil when it does not run.
	scheduler *schedule.Scheduler
	// choices looks people's stored preferences up for the dispatcher,
	// and optOut records a provider's opt-out in them (preferences.go);
	// nil without a preference store.
	choices func(ctx context.Context, ids []string) (map[string]templates.Choices, error)
	optOut  func(ctx context.Context, n *notification.Notification) error
	// optedOut tells a channel worker whether a fired notification's
	// person has turned it off since it was planned (preferences.go).
	optedOut func(ctx context.Context, n *notification.Notification) (bool, error)
	// quietEnd tells a channel worker when the quiet hours that hold at a
	// time end for a notification's person (worker.Config.QuietEnd).
	quietEnd func(ctx context.Context, n *notification.Notification, at time.Time) (time.Time, error)

	mu        sync.Mutex
	consumers []*kafkarun.Consumer
	live      kafkarun.Liveness // /healthz; see health.go
}

// roles returns the consuming roles cfg.Role runs, dispatcher first: not
// the gateway, which consumes no topic.
func roles(r config.Role) []config.Role {
	if r == config.RoleGateway {
		return nil
	}
	if r == config.RoleAll {
		out := []config.Role{config.RoleDispatcher}
		for _, ch := range notification.Known() {
			out = append(out, config.Role(ch))
		}
		return out
	}
	return []config.Role{r}
}

func ownerID(instance string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return instance + "-" + hex.EncodeToString(b)
}

// run creates herald's topics, starts a consumer per role and blocks until
// ctx ends and every consumer has drained, committed and left its group.
func (f *fleet) run(ctx context.Context) error {
	cfg := f.cfg
	if len(roles(cfg.Role)) == 0 {
		return f.runGatewayOnly(ctx)
	}
	conn, err := kafkaConnection(cfg)
	if err != nil {
		return err
	}
	if err := f.awaitDependencies(ctx, conn); err != nil {
		if ctx.Err() != nil {
			f.logger().Info("stopped while waiting for dependencies", zap.NamedError("waiting_for", f.waiting.Pending()))
			return nil
		}
		return err
	}

	producer := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: cfg.KafkaBrokers, Transport: conn.Transport})
	defer producer.Close()
	pub := f.tracing.Publisher(producer)
	owner := ownerID(cfg.InstanceID)

	joinErrors, err := obs.RegisterGroupMembership(f.metrics.Registry, f.groupMembers)
	if err != nil {
		f.log.Error("consumer group metrics", zap.Error(err))
	}
	f.live.SetMembers(f.memberships, kafkarun.GroupLimit(cfg.SessionTimeout, cfg.RebalanceTimeout), f.log)

	var wg sync.WaitGroup
	if cfg.Role.Runs(config.RoleDispatcher) {
		if f.scheduler, err = f.newScheduler(pub, conn, owner); err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = f.scheduler.Run(ctx) }()
	}
	if f.gateway != nil {
		wg.Add(1)
		go func() { defer wg.Done(); f.runGateway(ctx) }()
	}
	type roleStage struct {
		role string // the role's name for its first stage, the group's for the others
		st   pipeline.Stage
	}
	var stages []roleStage
	for _, role := range roles(cfg.Role) {
		sts, err := f.stages(role, pub, owner)
		if err != nil {
			return err
		}
		for i, st := range sts {
			name := string(role)
			if i > 0 {
				name = st.Group
			}
			stages = append(stages, roleStage{name, st})
		}
	}
	errs := make(chan error, len(stages)) // every consumer can fail without blocking
	for _, rs := range stages {
		role, st := rs.role, rs.st
		group := st.Group
		inFlight := cfg.MaxInFlight
		if st.MaxInFlight > 0 {
			inFlight = st.MaxInFlight
		}
		c, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{
			Brokers: cfg.KafkaBrokers, GroupID: group, Topics: st.Topics, Dialer: conn.Dialer,
			MaxInFlight: inFlight, CommitInterval: cfg.CommitInterval,
			DrainTimeout: cfg.ShutdownTimeout, SessionTimeout: cfg.SessionTimeout,
			RebalanceTimeout: cfg.RebalanceTimeout, HeartbeatInterval: cfg.HeartbeatInterval,
			Logger:   f.log.With(zap.String("role", string(role))),
			Observer: f.live.Observe(group, pipeline.NewObserver(f.metrics, group, st.Topics, joinErrors)),
			Gate:     st.Gate, Conflate: st.Conflate,
		}, st.Handler)
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.consumers = append(f.consumers, c)
		f.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", role, err)
			}
		}()
	}
	go f.watchLag(ctx, conn)
	f.log.Info("herald running", zap.String("role", string(cfg.Role)), zap.String("owner", owner))
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(ch <-chan error) []error {
	var out []error
	for e := range ch {
		out = append(out, e)
	}
	return out
}

// started reports whether the fleet got past waiting for its dependencies
// and started its consumers.
func (f *fleet) started() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.consumers) > 0
}

// logger is f.log, or a no-op for a fleet built without one (tests).
func (f *fleet) logger() *zap.Logger {
	if f.log == nil {
		return zap.NewNop()
	}
	return f.log
}

// common is what every stage of this fleet is built from.
func (f *fleet) common(pub queue.Publisher) pipeline.Common {
	return pipeline.Common{Config: f.cfg, Publisher: pub, Tracing: f.tracing, Metrics: f.metrics, Logger: f.logger(), Liveness: fleetLiveness{f}}
}

// stages builds one role's stages — a consumer group each; the order of
// their parts is written once, in package pipeline. The inapp role also
// runs the dashboard flow (package live): it keeps classes' attendance
// from the booking events and fans its changes out to staff's live views,
// both yielding to its notifications (pipeline.Priority).
func (f *fleet) stages(role config.Role, pub queue.Publisher, owner string) ([]pipeline.Stage, error) {
	c := f.common(pub)
	if role == config.RoleDispatcher {
		planner := pipeline.NewPlanner(f.cfg, f.templates, time.Now, f.choices)
		return []pipeline.Stage{pipeline.Dispatch(c, planner), pipeline.Schedule(c, f.scheduler)}, nil
	}
	ch := notification.Channel(role)
	guard, err := f.guard(c, ch)
	if err != nil {
		return nil, err
	}
	var prio *pipeline.Priority
	if ch == inapp.Name {
		prio = &pipeline.Priority{}
	}
	st, err := pipeline.Deliver(c, pipeline.Channel{
		Name: ch, Guard: guard, Renderer: f.templates, Store: f.store, Suppressions: f.prot.list,
		Limiter: f.limiter(ch), Receipts: f.receipts[ch], Owner: owner, Priority: prio,
		Wait: pipeline.NewWait(c, f.caps, f.capOf, f.quietEnd), OptOut: f.optOut, OptedOut: f.optedOut,
	})
	if err != nil || prio == nil {
		return []pipeline.Stage{st}, err
	}
	agg := &live.Aggregator{
		Store: f.attendance, Publisher: pub, Now: time.Now, Logger: f.logger().With(zap.String("role", "attendance")),
		Threshold: func() (float64, bool) { return f.templates.Current().Threshold(live.BusyType) },
	}
	fan := &live.Fanout{Feed: f.feed, Logger: f.logger().With(zap.String("role", "live")), Staff: f.staff}
	return []pipeline.Stage{st, pipeline.Aggregate(c, agg, prio), pipeline.Fanout(c, fan, prio)}, nil
}

// staff returns the ids of the roster's people with role at location, as
// the serving template tree's staff.yaml has them.
func (f *fleet) staff(role, location string) []string {
	ps := f.templates.Current().Roster().People(role, location)
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

// fleetLiveness is the fleet's liveness as the pipeline sees it.
type fleetLiveness struct{ f *fleet }

func (l fleetLiveness) Track(group string, topics []string, h queue.Handler) queue.Handler {
	return l.f.track(group, topics, h)
}

func (l fleetLiveness) Gate(group string, g kafkarun.Gate) kafkarun.Gate {
	return l.f.live.Gate(group, g)
}

// readyWaitsOn names what ready can wait on: the idempotency store's
// Redis, its only call that does I/O.
func (f *fleet) readyWaitsOn() string {
	if f.ping == nil {
		return "readiness check"
	}
	return fmt.Sprintf("idempotency store: redis %s (HERALD_REDIS_URL)", f.redisAddr)
}

// ready reports whether every consumer holds a generation and the
// idempotency store answers.
func (f *fleet) ready(ctx context.Context) error {
	f.mu.Lock()
	cs := append([]*kafkarun.Consumer(nil), f.consumers...)
	f.mu.Unlock()
	if err := f.waiting.Pending(); err != nil {
		return err
	}
	if len(cs) == 0 && len(roles(f.cfg.Role)) > 0 {
		return errors.New("consumers not started")
	}
	now := time.Now()
	var unjoined []string // every group, so one probe tells the whole story
	for _, c := range cs {
		if m := c.Membership(); !m.Joined {
			why := m.Group + ": " + m.Describe(now)
			if m.Unreachable {
				why += fmt.Sprintf("; kafka %s (HERALD_KAFKA_BROKERS) unreachable", strings.Join(f.cfg.KafkaBrokers, ","))
			}
			unjoined = append(unjoined, why)
		}
	}
	if len(unjoined) > 0 {
		return errors.New(strings.Join(unjoined, "; "))
	}
	if f.ping != nil {
		if err := f.ping(ctx); err != nil {
			return fmt.Errorf("idempotency store: redis %s (HERALD_REDIS_URL): %w", f.redisAddr, err)
		}
	}
	return nil
}

// memberships lists the standing of every consumer this process runs.
func (f *fleet) memberships() []kafkarun.Membership {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]kafkarun.Membership, len(f.consumers))
	for i, c := range f.consumers {
		out[i] = c.Membership()
	}
	return out
}

// groupMembers is memberships for the metrics.
func (f *fleet) groupMembers() []obs.GroupMember {
	now := time.Now()
	ms := f.memberships()
	out := make([]obs.GroupMember, len(ms))
	for i, m := range ms {
		out[i] = obs.GroupMember{Group: m.Group, Joined: m.Joined, Unjoined: m.Unjoined(now)}
	}
	return out
}
