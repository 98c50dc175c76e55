// Package kafkarun runs herald's pipeline stages on Kafka: a consumer-group
// runtime that processes each partition with key-ordered concurrency and
// commits watermarks, a durable publisher, and topic creation.
//
// It is the only package that imports kafka-go. It calls queue.Handler and
// knows nothing of notifications, templates, Redis or providers.
//
// Consumption model (after franz-go's goroutine-per-partition example, with
// Confluent Parallel Consumer's key ordering):
//
//   - One fetch loop per generation fetches every assigned partition, in
//     one request per leader broker (fetch.go). Each partition has a loop
//     that takes its fetched messages in offset order: messages with the
//     same key run one at a time, in offset order; different keys run
//     concurrently. Messages without a key are unordered.
//   - A process-wide bound (MaxInFlight) limits running handlers, and twice
//     it limits fetched, unfinished messages; when that is reached fetching
//     pauses, so memory stays bounded whatever the backlog. A message
//     waiting for a free handler waits in its partition's loop; only
//     running handlers have goroutines (runners, reused).
//   - Per partition, the commit point is the lowest offset without a durable
//     outcome. It is committed on CommitInterval and when the partition is
//     revoked, always with the generation that owns it, so a member that lost
//     a partition cannot commit it. Nothing is committed for work in flight.
//   - On revoke or shutdown: stop fetching, drop queued-but-unstarted work,
//     let started work finish within the drain deadline, commit, release.
package kafkarun

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/gymhq/herald/queue"
)

// ConsumerConfig configures a Consumer. Zero durations take the defaults
// documented on each field.
type ConsumerConfig struct {
	Brokers []string
	GroupID string
	Topics  []string
	// Dialer carries TLS/SASL settings and the client id; nil dials plainly.
	Dialer *kafka.Dialer

	// MaxInFlight bounds the handlers running at once across every
	// partition of this consumer. Default 256. Up to as many messages again
	// may wait fetched (behind a busy key, or for a free handler), so that a
	// few hot keys do not leave handlers idle; fetching pauses beyond that,
	// so memory is bounded by 2×MaxInFlight messages whatever the backlog.
	// Higher hides more provider latency; lower bounds memory and
	// redelivery after a crash (everything unfinished is redone by the next
	// owner, and deduplicated there).
	MaxInFlight int

	// CommitInterval is how often watermarks are committed. Default 500ms.
	// A crash redelivers at most this much completed work (deduplicated by
	// the idempotency keys).
	CommitInterval time.Duration

	// DrainTimeout bounds how long started work may run after shutdown
	// begins. Default 30s. Work still running then is abandoned uncommitted.
	DrainTimeout time.Duration

	// SessionTimeout is how long the coordinator waits for heartbeats before
	// declaring this member dead and moving its partitions. kafka-go's 30s
	// default leaves a crashed worker's partitions idle for half a minute;
	// herald defaults to 10s (brokers' minimum is usually 6s).
	SessionTimeout time.Duration
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin during a rebalance. Revoked partitions are drained within
	// 80% of it or of SessionTimeout, whichever is shorter, so they are
	// committed before the group moves on and before the coordinator, which
	// hears no heartbeat from a member between generations, expels this
	// one. Default 10s.
	RebalanceTimeout time.Duration
	// HeartbeatInterval; default 1s. Also bounds how fast a rebalance is
	// noticed.
	HeartbeatInterval time.Duration
	// PartitionWatchInterval is how often the group's topics are checked
	// for added partitions and for topics created or deleted; on a change
	// the member leaves the group and joins it again, so the group
	// rebalances onto them (watch.go). Default 5s.
	PartitionWatchInterval time.Duration

	// StartOffset applies to partitions with no committed offset:
	// kafka.FirstOffset (default) or kafka.LastOffset.
	StartOffset int64

	Logger *zap.Logger
	// Observer receives lifecycle and progress callbacks (metrics). Optional.
	Observer Observer
	// Gate, if set, is waited on before each attempt at a record (gate.go).
	Gate Gate
	// Conflate, if set, conflates the records of each key (conflate.go): of
	// the records one fetch brings from a partition, a record is dropped
	// unhandled when the next later kept record of its key has, as Conflate
	// reads them, the same scope and a higher version, and it is committed
	// with the records around it. For a flow where only a key's latest
	// state matters (the dashboards' live values): under a flood, a key's
	// records in one fetch cost one handler call. It is called only for
	// records whose key appears more than once in a fetch; it must be fast,
	// safe for concurrent use, and must not keep m. The Observer's
	// Superseded counts what it drops.
	Conflate Versioned
}

// Observer is told about the consumer's progress. Implementations must be
// safe for concurrent use and fast; they run on the hot path.
type Observer interface {
	Assigned(topic string, partition int)
	Revoked(topic string, partition int)
	Committed(topic string, partition int, offset int64)
	InFlight(delta int)
	// JoinFailed is called for every failed attempt to join the group
	// (Membership.LastJoinError has the latest).
	JoinFailed(err error)
	// Handled is called once per record that reached a durable outcome:
	// wait is from the record's timestamp (its producer's clock, in
	// milliseconds) to the handler's first call, or negative when the
	// record has no timestamp a producer could have written (recordWait);
	// took is from that call to the outcome, retries included.
	Handled(topic string, wait, took time.Duration)
	// Superseded is called with the records of topic that conflation
	// (ConsumerConfig.Conflate) dropped from one fetch (n > 0).
	Superseded(topic string, n int)
}

// NopObserver ignores every callback. Embed it in an Observer that cares
// about a few of them: a later callback then needs no stub in each.
type NopObserver struct{}

func (NopObserver) Assigned(string, int)                         {}
func (NopObserver) Revoked(string, int)                          {}
func (NopObserver) Committed(string, int, int64)                 {}
func (NopObserver) InFlight(int)                                 {}
func (NopObserver) JoinFailed(error)                             {}
func (NopObserver) Handled(string, time.Duration, time.Duration) {}
func (NopObserver) Superseded(string, int)                       {}

func (c *ConsumerConfig) setDefaults() {
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 256
	}
	if c.PartitionWatchInterval <= 0 {
		c.PartitionWatchInterval = 5 * time.Second
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = 500 * time.Millisecond
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = 10 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = time.Second
	}
	if c.StartOffset == 0 {
		c.StartOffset = kafka.FirstOffset
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
}

// Validate reports the first problem with c.
func (c *ConsumerConfig) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafkarun: no brokers")
	case c.GroupID == "":
		return errors.New("kafkarun: empty group id")
	case len(c.Topics) == 0:
		return errors.New("kafkarun: no topics")
	case c.HeartbeatInterval > 0 && c.SessionTimeout > 0 && c.HeartbeatInterval*3 > c.SessionTimeout:
		return errors.New("kafkarun: heartbeat interval must be under a third of the session timeout")
	}
	return nil
}

// Consumer runs a handler over a consumer group's partitions.
type Consumer struct {
	cfg     ConsumerConfig
	handler queue.Handler
	log     *zap.Logger
	slots   chan struct{}           // fetched, unfinished messages (2×MaxInFlight)
	busy    chan struct{}           // running handlers (MaxInFlight)
	runners *runners                // the handlers' goroutines: one per message running, reused
	keyHash func(key []byte) uint64 // of partitions' busy keys (partition.keys): maphash, seeded per consumer
	// sessions are the fetch sessions with each broker, kept from one
	// generation's fetcher to the next and closed when Run returns.
	sessions map[int32]*session
	// transport carries the fetch requests (fetch.go): the Dialer's TLS,
	// SASL and client id, and metadata refreshed every second, so that
	// fetches follow a moved leader within a second (kafka-go's default
	// of 6 s left a moved partition unfetched that long).
	transport *kafka.Transport

	mu         sync.Mutex
	membership Membership
	// drains counts the current generation's partitions that have not yet
	// drained and committed (guarded by mu): a shutdown waits for them
	// before it ends the generation, so that kafka-go heartbeats through
	// the drain.
	drains *sync.WaitGroup
}

// Membership is a consumer's standing in its group: what readiness,
// liveness and the group metrics are computed from.
type Membership struct {
	Group string
	// Joined: the consumer holds a generation now (possibly with no
	// partitions). It is false from the moment a generation ends until the
	// next one is handed over, so a group that keeps rebalancing, or never
	// re-forms, reads as not joined.
	Joined     bool
	Generation int32
	// Since is when Joined last changed; for a consumer that never joined,
	// when it started.
	Since time.Time
	// LastJoinError is the latest failed attempt to join since the
	// consumer last held a generation; JoinErrors counts them. Both reset
	// when a generation is handed over.
	LastJoinError error
	JoinErrors    int
	// Unreachable: the latest attempt did not reach a broker at all (the
	// dial failed), as opposed to a broker that answered but did not form
	// the group.
	Unreachable bool
}

// Unjoined reports how long the consumer has held no generation at now
// (zero while it holds one).
func (m Membership) Unjoined(now time.Time) time.Duration {
	if m.Joined {
		return 0
	}
	return now.Sub(m.Since)
}

// NewConsumer validates cfg and returns a Consumer; call Run to start it.
func NewConsumer(cfg ConsumerConfig, h queue.Handler) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Consumer{cfg: cfg, handler: h, log: cfg.Logger.With(zap.String("group", cfg.GroupID)),
		slots: make(chan struct{}, 2*cfg.MaxInFlight), busy: make(chan struct{}, cfg.MaxInFlight),
		runners: newRunners(), sessions: map[int32]*session{},
		membership: Membership{Group: cfg.GroupID, Since: time.Now()}}
	seed := maphash.MakeSeed()
	c.keyHash = func(key []byte) uint64 { return maphash.Bytes(seed, key) }
	c.transport = &kafka.Transport{MetadataTTL: time.Second, MetadataTopics: cfg.Topics, DialTimeout: 10 * time.Second}
	if d := cfg.Dialer; d != nil {
		c.transport.ClientID, c.transport.TLS, c.transport.SASL = d.ClientID, d.TLS, d.SASLMechanism
		if d.Timeout > 0 {
			c.transport.DialTimeout = d.Timeout
		}
		if d.DialFunc != nil {
			c.transport.Dial = d.DialFunc
		}
	}
	return c, nil
}

// Joined reports whether the consumer currently holds a generation.
func (c *Consumer) Joined() bool { return c.Membership().Joined }

// Membership returns the consumer's standing in its group now.
func (c *Consumer) Membership() Membership {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.membership
}

// setJoined records that gen was handed over.
func (c *Consumer) setJoined(gen int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.membership = Membership{Group: c.cfg.GroupID, Joined: true, Generation: gen, Since: time.Now()}
}

// setUnjoined records that generation gen ended (a later one may already
// be held: then nothing changes).
func (c *Consumer) setUnjoined(gen int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.membership.Joined && c.membership.Generation == gen {
		c.membership.Joined = false
		c.membership.Since = time.Now()
	}
}

// joinFailed records a failed attempt to join and returns the standing.
func (c *Consumer) joinFailed(err error) Membership {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.membership.Joined {
		// Next reports errors only between generations; be exact anyway.
		c.membership.Joined = false
		c.membership.Since = time.Now()
	}
	c.membership.LastJoinError = err
	c.membership.JoinErrors++
	c.membership.Unreachable = isDialError(err)
	return c.membership
}

// isDialError reports whether err is a failure to connect at all.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Run consumes until ctx ends, then drains (within DrainTimeout), commits,
// leaves the group so that the rest of the fleet takes over at once, and
// returns nil. It returns an error only if the group cannot be set up.
func (c *Consumer) Run(ctx context.Context) error {
	// The in-flight series exists from the start: a group whose partitions
	// are all idle takes no slot, and dashboards and alerts expect a 0.
	c.cfg.Observer.InFlight(0)
	for {
		again, err := c.runGroup(ctx, c.subscription(ctx))
		if err != nil {
			return err
		}
		if !again {
			break
		}
	}
	closeSessions(c.transport, kafka.TCP(c.cfg.Brokers...), c.sessions)
	c.transport.CloseIdleConnections()
	c.mu.Lock()
	c.membership.Joined = false
	c.membership.Since = time.Now()
	c.mu.Unlock()
	c.log.Info("left consumer group")
	return nil
}

// subscription is what the group subscribes to: the configured topics that
// exist. kafka-go's group leader assigns nothing at all, of any topic, while
// one subscribed topic is missing (its metadata read fails as a whole), so a
// dispatcher started before the events topic was created would not consume
// herald.derived.v1 either. All of them when none exists, or when the
// metadata cannot be read: there is nothing to lose by trying.
func (c *Consumer) subscription(ctx context.Context) []string {
	counts, err := c.partitionCounts(ctx)
	if err != nil {
		return c.cfg.Topics
	}
	return subscribable(c.cfg.Topics, counts)
}

// subscribable is the topics of all that have partitions in counts, or all
// when none has.
func subscribable(all []string, counts map[string]int) []string {
	var topics []string
	for _, t := range all {
		if counts[t] > 0 {
			topics = append(topics, t)
		}
	}
	if len(topics) == 0 {
		return all
	}
	return topics
}

// runGroup consumes as one member of the group subscribed to topics until
// ctx ends (again false) or the partition watcher asks to join again (again
// true: partitions were added, or a topic created or deleted; the group is
// left, and Run joins it again with the topics that exist then). It returns
// an error only if the group cannot be set up.
func (c *Consumer) runGroup(ctx context.Context, topics []string) (again bool, err error) {
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.GroupID,
		Brokers:           c.cfg.Brokers,
		Dialer:            c.cfg.Dialer,
		Topics:            topics,
		HeartbeatInterval: c.cfg.HeartbeatInterval,
		SessionTimeout:    c.cfg.SessionTimeout,
		RebalanceTimeout:  c.cfg.RebalanceTimeout,
		JoinGroupBackoff:  time.Second,
		// kafka-go's 5 s request timeout stays: it gives a JoinGroup 5 s
		// plus the rebalance timeout, and Kafka answers a join within the
		// rebalance timeout (plus group.initial.rebalance.delay.ms, 3 s, for
		// a new group). A join given up on is costly (kafka-go forgets its
		// member id and joins again as a new member, leaving a dead one for
		// the next rebalance to wait out); the in-process stand-in once held
		// joins past any deadline (third_party/kfake/HERALD.md).
		StartOffset: c.cfg.StartOffset,
		// Offsets are retained by the broker's default; herald commits often.
		RetentionTime: 7 * 24 * time.Hour,
		ErrorLogger:   kafka.LoggerFunc(func(f string, a ...any) { c.log.Debug("kafka-go: " + fmt.Sprintf(f, a...)) }),
	})
	if err != nil {
		return false, fmt.Errorf("kafkarun: consumer group %s: %w", c.cfg.GroupID, err)
	}

	// Closing the group ends the current generation, waits for its
	// functions to return, and then sends LeaveGroup. It is closed to
	// subscribe again, or when ctx ends: then only after the partitions have
	// drained and committed (they see ctx end and stop fetching), because
	// kafka-go heartbeats only while a generation lasts.
	groupCtx, resubscribe := context.WithCancel(ctx)
	defer resubscribe()
	closed := make(chan struct{})
	go func() {
		<-groupCtx.Done()
		if ctx.Err() != nil {
			// Shutdown: the generation, and with it kafka-go's heartbeat,
			// goes on through the drain. Ended first, a drain longer than
			// the session timeout got the member expelled and its
			// partitions handed to another member while their records
			// still ran here (TestShutdownDrainKeepsThePartition).
			c.waitDrains(c.cfg.DrainTimeout + 5*time.Second)
		}
		_ = cg.Close()
		close(closed)
	}()

	for {
		gen, err := cg.Next(groupCtx)
		if err != nil {
			if groupCtx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			m := c.joinFailed(err)
			c.cfg.Observer.JoinFailed(err)
			c.log.Warn("consumer group join failed; retrying", zap.Error(err),
				zap.Duration("without_generation", m.Unjoined(time.Now()).Round(time.Millisecond)), zap.Int("failed_joins", m.JoinErrors))
			continue
		}
		c.runGeneration(ctx, gen, topics, resubscribe)
	}
	<-closed
	return ctx.Err() == nil, nil
}

// waitDrains waits, at most d, for the current generation's partitions to
// drain and commit.
func (c *Consumer) waitDrains(d time.Duration) {
	c.mu.Lock()
	wg := c.drains
	c.mu.Unlock()
	if wg == nil {
		return
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

func (c *Consumer) runGeneration(ctx context.Context, gen *kafka.Generation, topics []string, resubscribe func()) {
	// The partition counts the group formed on, read first, as close to
	// the leader's assignment as a member can.
	base, _ := c.partitionCounts(ctx) // nil when it fails: the watcher reads them later
	cm := &committer{c: c, gen: gen, parts: map[*partition]struct{}{}}
	f := newFetcher(c.transport, c.cfg.Brokers, c.cfg.Topics, c.cfg.MaxInFlight, c.sessions, c.log)
	f.conflate, f.observer = c.cfg.Conflate, c.cfg.Observer
	n := 0
	drains := &sync.WaitGroup{}
	for _, parts := range gen.Assignments {
		drains.Add(len(parts))
	}
	c.mu.Lock()
	c.drains = drains
	c.mu.Unlock()
	for topic, parts := range gen.Assignments {
		for _, a := range parts {
			n++
			fd, offset := f.add(topic, a.ID, a.Offset), a.Offset
			gen.Start(func(genCtx context.Context) {
				c.consumePartition(ctx, genCtx, gen, cm, fd, offset)
				drains.Done()
				// A function that returns ends the generation (kafka-go):
				// on shutdown, not before every partition has drained.
				<-genCtx.Done()
			})
		}
	}
	if n > 0 {
		gen.Start(func(genCtx context.Context) { cm.loop(ctx, genCtx) })
		gen.Start(func(genCtx context.Context) {
			fctx, stop := context.WithCancel(genCtx)
			defer stop()
			go func() {
				select {
				case <-ctx.Done():
				case <-fctx.Done():
				}
				stop()
			}()
			f.run(fctx)
			<-genCtx.Done() // returning would end the generation (kafka-go)
		})
	}
	c.setJoined(gen.ID)
	// The generation ends on a rebalance, a lost coordinator or shutdown;
	// from then until the next one the consumer is not joined.
	gen.Start(func(genCtx context.Context) {
		<-genCtx.Done()
		c.setUnjoined(gen.ID)
	})
	gen.Start(func(genCtx context.Context) { c.watchPartitions(genCtx, base, topics, resubscribe) })
	// A member with no partitions needs nothing here: kafka-go ends the
	// generation from its heartbeat loop, and Next blocks until then.
	c.log.Info("joined consumer group", zap.Int32("generation", gen.ID), zap.String("member", gen.MemberID), zap.Int("partitions", n))
}

// committer commits the watermarks of every partition of one generation in
// one OffsetCommit request per CommitInterval, always with that generation.
//
// One request per generation, never one per partition at once: kafka-go
// multiplexes the coordinator connection, and callers waiting on it for a
// response that is not theirs busy-spin (Conn.waitResponse), which under
// load burned half of a CPU core in per-partition commits. mu serialises
// requests, so concurrent callers (a revoke's final commit and the ticker)
// wait on a mutex instead.
type committer struct {
	c   *Consumer
	gen *kafka.Generation

	mu    sync.Mutex // held for a whole commit; guards partition.committed
	pmu   sync.Mutex
	parts map[*partition]struct{}
}

func (cm *committer) add(p *partition) {
	cm.pmu.Lock()
	cm.parts[p] = struct{}{}
	cm.pmu.Unlock()
}

func (cm *committer) remove(p *partition) {
	cm.pmu.Lock()
	delete(cm.parts, p)
	cm.pmu.Unlock()
}

func (cm *committer) loop(runCtx, genCtx context.Context) {
	t := time.NewTicker(cm.c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-genCtx.Done():
			return
		case <-t.C:
			// Also through a shutdown's drain: the generation goes on
			// until every partition has drained.
			cm.commit()
		}
	}
}

// commit commits every registered partition whose watermark advanced.
// Errors are logged, not fatal: a failed commit is retried at the next
// tick, and a commit refused because the generation is over is exactly the
// protection we want.
func (cm *committer) commit() {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	cm.pmu.Lock()
	var ps []*partition
	var offs []int64
	req := map[string]map[int]int64{}
	for p := range cm.parts {
		p.mu.Lock()
		off := p.wm.commitPoint()
		p.mu.Unlock()
		if off < 0 || off <= p.committed {
			continue
		}
		if req[p.topic] == nil {
			req[p.topic] = map[int]int64{}
		}
		req[p.topic][p.id] = off
		ps = append(ps, p)
		offs = append(offs, off)
	}
	cm.pmu.Unlock()
	if len(ps) == 0 {
		return
	}
	if err := cm.gen.CommitOffsets(req); err != nil {
		cm.c.log.Warn("commit failed", zap.Any("offsets", req), zap.Int32("generation", cm.gen.ID), zap.Error(err))
		return
	}
	for i, p := range ps {
		p.committed = offs[i]
		cm.c.cfg.Observer.Committed(p.topic, p.id, offs[i])
	}
}

// partition is the state of one assigned partition in one generation.
type partition struct {
	c          *Consumer
	topic      string
	id         int
	log        *zap.Logger
	workCtx    context.Context // ends at the drain deadline
	handlerCtx context.Context // workCtx, plus queue.Stopping
	stopping   chan struct{}   // closed when fetching stops
	mu         sync.Mutex
	wm         *watermark
	// keys are the busy keys, by their hash (Consumer.keyHash), each
	// with the messages waiting behind it. Two keys of one hash would run
	// one at a time in offset order, as one key: each key's order is kept
	// all the same (TestKeysOfOneHashKeepTheirOrder), and with at most
	// 2×MaxInFlight keys busy (512) the chance is about one in 10^14.
	// Hashes spare the string each record's key made as a map key (1.4
	// allocations per record in BenchmarkConsume) and the map's
	// comparisons of whole keys.
	keys      map[uint64][]*queue.Message
	running   sync.WaitGroup
	stopped   bool
	committed int64
}

func (c *Consumer) consumePartition(runCtx, genCtx context.Context, gen *kafka.Generation, cm *committer, fd *feed, offset int64) {
	topic, id := fd.topic, int(fd.partition)
	log := c.log.With(zap.String("topic", topic), zap.Int("partition", id))
	c.cfg.Observer.Assigned(topic, id)
	defer c.cfg.Observer.Revoked(topic, id)

	// Fetching stops when the generation ends (rebalance) or the process
	// stops. Started work gets its own context so it can finish.
	fetchCtx, stopFetch := context.WithCancel(context.Background())
	defer stopFetch()
	go func() {
		select {
		case <-genCtx.Done():
		case <-runCtx.Done():
		case <-fetchCtx.Done():
		}
		stopFetch()
	}()
	workCtx, abandon := context.WithCancel(context.Background())
	defer abandon()

	p := &partition{
		c: c, topic: topic, id: id, log: log, workCtx: workCtx,
		stopping: make(chan struct{}),
		keys:     make(map[uint64][]*queue.Message),
	}
	p.handlerCtx = queue.WithStopping(workCtx, p.stopping)
	// A negative offset (kafka.FirstOffset/LastOffset) is resolved by the
	// first fetched message; until then there is nothing to commit.
	p.wm = newWatermark(offset)
	p.committed = offset

	cm.add(p)
	defer cm.remove(p)

	log.Info("partition assigned", zap.Int64("offset", offset), zap.Int32("generation", gen.ID))
	// A record first, then an in-flight slot: a partition waiting for
	// records must not hold a slot, or idle partitions (a retry topic's)
	// could hold them all while others have records. The record waiting
	// for a slot is one of the feed's, already counted by its bound. A
	// record taken but never dispatched (the partition stopping) was never
	// started and stays uncommitted for the next owner.
	for {
		m, err := fd.take(fetchCtx)
		if err != nil {
			break
		}
		if err := c.acquire(fetchCtx); err != nil {
			break
		}
		if !p.dispatch(fetchCtx.Done(), m) {
			c.release()
			break
		}
	}

	// Drain. A shutdown gets DrainTimeout: the generation, and so the
	// heartbeat, lasts until every partition has drained (runGroup). A
	// revoke must finish within the rebalance timeout, so that the commit
	// lands before the group moves on, and within the session timeout too:
	// kafka-go sends no heartbeat once a generation has ended, and past the
	// session timeout the coordinator expels this member and hands the
	// partition on while its work still runs here
	// (TestRevokeDrainKeepsThePartition). A shutdown's drain whose
	// generation ends on the way (a rebalance) has the revoke's deadline
	// from then on (TestShutdownDrainThroughARebalance).
	revoke := min(c.cfg.RebalanceTimeout, c.cfg.SessionTimeout) * 8 / 10
	deadline := c.cfg.DrainTimeout
	if runCtx.Err() == nil {
		deadline = revoke
	}
	dropped := p.stop()
	drained := make(chan struct{})
	go func() { p.running.Wait(); close(drained) }()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	end := time.Now().Add(deadline)
	genDone := genCtx.Done()
drain:
	for {
		select {
		case <-drained:
			break drain
		case <-genDone:
			// The generation ended mid-drain (a rebalance during a
			// shutdown's drain): no heartbeat from here on, so the
			// revoke deadline applies from now.
			genDone = nil
			if e := time.Now().Add(revoke); e.Before(end) {
				end, deadline = e, revoke
				timer.Reset(revoke)
			}
		case <-timer.C:
			log.Warn("drain deadline passed; abandoning unfinished work uncommitted", zap.Duration("deadline", deadline))
			abandon()
			<-drained
			break drain
		}
	}
	cm.commit()
	cm.mu.Lock()
	committed := p.committed
	cm.mu.Unlock()
	log.Info("partition released", zap.Int64("committed", committed), zap.Int("dropped_unstarted", dropped))
}

// acquire takes an in-flight slot, blocking while the bound is reached. A
// partition's loop learns here that it stops: an ended ctx takes no slot,
// even a free one.
func (c *Consumer) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select { // a free slot without a two-way select (most records)
	case c.slots <- struct{}{}:
		c.cfg.Observer.InFlight(1)
		return nil
	default:
	}
	select {
	case c.slots <- struct{}{}:
		c.cfg.Observer.InFlight(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// begin takes a running-handler slot, waiting for one; it returns false,
// without a slot, when the partition stops first (the message was never
// started and stays uncommitted for the next owner).
func (c *Consumer) begin(stopping <-chan struct{}) bool {
	select {
	case <-stopping:
		return false
	default:
	}
	select { // a free handler without a two-way select (most records)
	case c.busy <- struct{}{}:
		return true
	default:
	}
	select {
	case c.busy <- struct{}{}:
		return true
	case <-stopping:
		return false
	}
}

func (c *Consumer) release() {
	<-c.slots
	c.cfg.Observer.InFlight(-1)
}

// dispatch queues m behind the running message with the same key, or
// starts it once a handler is free. It waits for the handler here, in the
// partition's loop, so that a message waiting for one holds no goroutine.
// (Each waited on a runner of its own: a backlog started up to
// 2×MaxInFlight runners per consumer, each of whose stacks the collector
// shrank while it waited and the handler grew again. The pipeline bench's
// process held 1,777–1,934 goroutines with the runners handed out
// last-in first-out alone, 1,232–1,422 with this too; issue 14's
// twenty-sixth pass.) It reports false, with m neither queued
// nor started, when stopping closes first: m stays uncommitted for the
// next owner, and its in-flight slot is the caller's to release.
func (p *partition) dispatch(stopping <-chan struct{}, m *queue.Message) bool {
	var h uint64
	if len(m.Key) > 0 {
		h = p.c.keyHash(m.Key)
		p.mu.Lock()
		// Only this loop adds keys: one not busy now stays so until m
		// starts below.
		if waiting, busy := p.keys[h]; busy {
			p.wm.add(m.Offset)
			p.keys[h] = append(waiting, m)
			p.mu.Unlock()
			return true
		}
		p.mu.Unlock()
	}
	if !p.c.begin(stopping) {
		return false
	}
	p.mu.Lock()
	p.wm.add(m.Offset)
	if len(m.Key) > 0 {
		p.keys[h] = nil
	}
	p.running.Add(1)
	p.mu.Unlock()
	p.c.runners.handle(p, m)
	return true
}

// run handles m and then every message queued behind its key, in order.
func (p *partition) run(m *queue.Message) {
	defer p.running.Done()
	held := true // dispatch took the first message's handler slot
	for m != nil {
		ok := false
		if held || p.c.begin(p.stopping) {
			ok = p.handle(m)
			<-p.c.busy
		}
		held = false
		p.mu.Lock()
		if ok {
			p.wm.done(m.Offset)
		}
		var next *queue.Message
		if len(m.Key) > 0 {
			h := p.c.keyHash(m.Key)
			if waiting := p.keys[h]; len(waiting) > 0 && !p.stopped && ok {
				next = waiting[0]
				waiting[0] = nil
				p.keys[h] = waiting[1:]
			} else {
				// Nothing waiting, or we are stopping / the message was
				// abandoned: later messages of this key must not run ahead
				// of it. Dropped ones were never started; they stay
				// uncommitted for the next owner.
				for range waiting {
					p.c.release()
				}
				delete(p.keys, h)
			}
		}
		p.mu.Unlock()
		p.c.release()
		m = next
	}
}

// handle calls the handler until it reports a durable outcome. It returns
// false if the message was abandoned (drain deadline passed, or stopping
// while the handler keeps failing).
func (p *partition) handle(m *queue.Message) bool {
	// Jittered exponential backoff keeps a fleet from retrying in lockstep
	// after an outage; made at the first failure (most records have none).
	var b *backoff.ExponentialBackOff
	var start time.Time
	for attempt := 1; ; attempt++ {
		if !p.waitGate() {
			return false
		}
		if attempt == 1 {
			start = time.Now()
		}
		err := p.c.handler(p.handlerCtx, m)
		if err == nil {
			p.c.cfg.Observer.Handled(m.Topic, recordWait(m.Time, start), time.Since(start))
			return true
		}
		if p.workCtx.Err() != nil {
			return false
		}
		p.log.Warn("handler could not reach a durable outcome; retrying",
			zap.Int64("offset", m.Offset), zap.Int("attempt", attempt), zap.Error(err))
		if b == nil {
			b = &backoff.ExponentialBackOff{InitialInterval: 50 * time.Millisecond, RandomizationFactor: 0.5,
				Multiplier: 2, MaxInterval: 5 * time.Second}
			b.Reset()
		}
		select {
		case <-time.After(b.NextBackOff()):
		case <-p.stopping:
			return false
		case <-p.workCtx.Done():
			return false
		}
	}
}

// recordWait is how long a record with timestamp ts waited until now: at
// least zero (the producer's clock may run ahead of ours), or -1 when the
// timestamp is not one a Kafka producer wrote: none (Kafka's -1), or from
// before Kafka existed (a producer writing seconds as milliseconds). One
// such record would otherwise put decades into the wait histogram's sum.
func recordWait(ts, now time.Time) time.Duration {
	if ts.Before(earliestRecord) {
		return -1
	}
	return max(0, now.Sub(ts))
}

// earliestRecord is the first instant taken for a real record timestamp.
var earliestRecord = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)

// stop prevents queued messages from starting and returns how many were
// dropped (they remain uncommitted).
func (p *partition) stop() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	close(p.stopping)
	n := 0
	for k, waiting := range p.keys {
		n += len(waiting)
		for range waiting {
			p.c.release()
		}
		p.keys[k] = nil
	}
	return n
}
