package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime/trace"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/pipeline"
	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
)

// allChannels are the channels the simulated workload reaches: every
// registered channel whose addresses are people's in the event (a
// subscription channel, the webhook, has no subscribers in the bench's
// template tree, so it would only add an idle consumer).
func allChannels() []notification.Channel {
	var out []notification.Channel
	for _, d := range channels.All() {
		if d.Addresses != nil {
			out = append(out, d.Name)
		}
	}
	return out
}

// tracker records what the sinks received, per notification id.
//
// Nothing it holds through a measured window is a pointer, so the
// collector of the measured process has nothing of the bench's to mark:
// with a map of 113,000 id strings to *delivery entries, and the ids the
// runners kept to fill it, each collection of a latency run spent 26 ms
// in its mark phase on average, and notifications in flight meanwhile
// waited for the processors the mark workers took (the twenty-fifth pass
// of issue 14; runtime/trace showed the slowest notifications' time
// overlapped a mark phase five to fifteen times as often as chance).
type tracker struct {
	mu sync.Mutex
	// index maps each expected id's trackerKey to its entry in ds. A
	// receipt looks its id up and never keeps it: a decoded
	// notification's id is a substring of its whole record, so a map
	// keyed by received ids kept every delivered record alive in the
	// measured process (121 MB of a latency run's live heap, and its GC
	// marks became the run's p99).
	index    map[uint64]int32
	ds       []delivery
	base     time.Time
	nGot     int // entries with a receipt
	dups     int
	expected int
	// anyID counts sends up to expected, with no want list and no ids
	// (a worker process that is only told how many to wait for).
	anyID bool
	sends int
	done  chan struct{}
	last  time.Time
	// slow, when not zero, is the latency above which a receipt is
	// logged in the execution trace, when one is being written
	// (Options.WindowTraces).
	slow time.Duration
}

// SlowLogCategory is the category of the execution trace's log entry for
// a notification slower than the latency target: its message is the
// latency in microseconds, the event's id, the channel and the
// notification's id, separated by spaces.
const SlowLogCategory = "herald.slow"

// delivery is one expected notification: when its event was produced and
// its first receipt, as nanoseconds after the tracker's base plus one
// (zero until known; a time.Time holds a pointer to its location).
type delivery struct{ produced, got int64 }

// trackerSeed hashes ids into trackerKeys. Two ids of a run sharing a
// 64-bit key (about 4e-10 for 120,000 ids) would count as one.
var trackerSeed = maphash.MakeSeed()

// trackerKey is what the tracker knows an id by.
func trackerKey(id string) uint64 { return maphash.String(trackerSeed, id) }

func newTracker() *tracker {
	return &tracker{index: map[uint64]int32{}, base: time.Now(), done: make(chan struct{})}
}

// at is t as a delivery's stamp.
func (t *tracker) at(at time.Time) int64 { return int64(at.Sub(t.base)) + 1 }

// expect adds ids to wait for, and returns their entries for stamp.
func (t *tracker) expect(ids ...string) []int32 {
	keys := make([]uint64, len(ids))
	for i, id := range ids {
		keys[i] = trackerKey(id)
	}
	return t.expectKeys(keys...)
}

// expectKeys is expect for ids already hashed with trackerKey.
func (t *tracker) expectKeys(keys ...uint64) []int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	es := make([]int32, len(keys))
	for i, k := range keys {
		e, ok := t.index[k]
		if !ok {
			e = t.entry(k)
			t.expected++
		}
		es[i] = e
	}
	return es
}

// entry adds key's entry; t.mu is held.
func (t *tracker) entry(k uint64) int32 {
	e := int32(len(t.ds))
	t.ds = append(t.ds, delivery{})
	t.index[k] = e
	return e
}

// stamp is produced for entries expect returned: a producer of events at
// a steady rate stamps them without looking ids up in the measured
// window (the lookups in a map of 120,000 ids were 2% of the latency
// scenario's CPU).
func (t *tracker) stamp(at time.Time, es []int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range es {
		t.ds[e].produced = t.at(at)
	}
}

// produced stamps when the event behind ids was produced.
func (t *tracker) produced(at time.Time, ids ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		k := trackerKey(id)
		e, ok := t.index[k]
		if !ok {
			e = t.entry(k)
		}
		t.ds[e].produced = t.at(at)
	}
}

// receive records a receipt of id; from, when known, is the message the
// sink was given (for the slow log).
func (t *tracker) receive(id string, from *channels.Message) {
	now := time.Now()
	var k uint64
	if !t.anyID {
		k = trackerKey(id) // outside the lock
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.anyID {
		// A measured worker process counts sends without remembering ids,
		// so that the bookkeeping of the benchmark does not show up in the
		// process's memory.
		t.sends++
		t.last = now
		if t.sends == t.expected {
			close(t.done)
		}
		return
	}
	e, ok := t.index[k]
	if !ok {
		return // not part of this run's expectation
	}
	d := &t.ds[e]
	if d.got != 0 {
		t.dups++
		return
	}
	d.got = t.at(now)
	if l := time.Duration(d.got - d.produced); t.slow > 0 && from != nil && d.produced != 0 && l > t.slow && trace.IsEnabled() {
		trace.Log(context.Background(), SlowLogCategory,
			strconv.FormatInt(int64(l/time.Microsecond), 10)+" "+from.EventID+" "+string(from.Channel)+" "+id)
	}
	t.nGot++
	t.last = now
	if t.nGot == t.expected {
		close(t.done)
	}
}

// finished reports whether every expected id was received.
func (t *tracker) finished() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

func (t *tracker) received() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.anyID {
		return t.sends
	}
	return t.nGot
}

// wait blocks until every expected id was received or timeout passes.
func (t *tracker) wait(ctx context.Context, timeout time.Duration) error {
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		return fmt.Errorf("received %d of %d notifications in %v", t.received(), t.expected, timeout)
	}
}

// latencies returns produce → receipt for every received id, sorted, and
// how many expected ids were not received (counted at cutoff as a lower
// bound when cutoff is not zero).
func (t *tracker) latencies(cutoff time.Time) (lat []time.Duration, missing int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, d := range t.ds {
		p := d.produced
		if p == 0 {
			continue
		}
		if d.got != 0 {
			lat = append(lat, time.Duration(d.got-p))
		} else {
			missing++
			if !cutoff.IsZero() {
				lat = append(lat, time.Duration(t.at(cutoff)-p))
			}
		}
	}
	sortDurations(lat)
	return lat, missing
}

// sink is a provider stand-in that accepts every message after latency.
type sink struct {
	latency time.Duration
	t       *tracker
}

var _ channels.Sender = (*sink)(nil)

func (s *sink) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	if s.latency > 0 {
		tm := time.NewTimer(s.latency)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return channels.Receipt{}, ctx.Err()
		}
	}
	s.t.receive(m.NotificationID, m)
	return channels.Receipt{ProviderMessageID: "bench-" + m.NotificationID}, nil
}

func (s *sink) Close() error { return nil }

// newPlanner is the dispatcher's planner as herald run makes it
// (pipeline.NewPlanner) on the defaults of every setting, at the bench's
// fixed clock (eventNow). choices, when set, looks people's stored
// preferences up for every event, as herald run's does in Redis.
func newPlanner(tpl *templates.Set, choices prefs.Store) *dispatcher.Planner {
	var lookup func(context.Context, []string) (map[string]templates.Choices, error)
	if choices != nil {
		lookup = prefs.PlanChoices(choices)
	}
	return pipeline.NewPlanner(config.Defaults(), tpl, eventNow, lookup)
}

// plan turns events into notifications exactly as the dispatcher will
// (nobody has stored preferences: the bench's Redis is flushed).
func plan(tpl *templates.Set, values [][]byte) ([][]notification.Notification, int, error) {
	p := newPlanner(tpl, nil)
	out := make([][]notification.Notification, len(values))
	total := 0
	for i, v := range values {
		ns, err := p.Plan(v)
		if err != nil && !errors.Is(err, dispatcher.ErrUnknownType) {
			return nil, 0, fmt.Errorf("plan event %d: %w", i, err)
		}
		out[i] = ns
		total += len(ns)
	}
	return out, total, nil
}

// plannedIDs is every event's notification ids as trackerKeys, event by
// event, in two flat arrays without pointers: the measured process holds
// them through its window, and the collector has nothing in them to mark.
type plannedIDs struct {
	keys []uint64
	ends []int32 // ends[i] is where event i's keys end
}

func newPlannedIDs(planned [][]notification.Notification) plannedIDs {
	p := plannedIDs{ends: make([]int32, len(planned))}
	for i, ns := range planned {
		for j := range ns {
			p.keys = append(p.keys, trackerKey(ns[j].ID))
		}
		p.ends[i] = int32(len(p.keys))
	}
	return p
}

// span is where event i's keys are in keys.
func (p plannedIDs) span(i int) (lo, hi int) {
	if i > 0 {
		lo = int(p.ends[i-1])
	}
	return lo, int(p.ends[i])
}

// upTo is the keys of the first n events.
func (p plannedIDs) upTo(n int) []uint64 {
	if n == 0 {
		return nil
	}
	return p.keys[:p.ends[n-1]]
}

// heraldPipeline is herald's pipeline wired as cmd/herald wires it: a
// dispatcher consumer and one consumer per channel in one process, the
// coalescing Redis store, the batching producer.
type heraldPipeline struct {
	consumers []*consumer
	producer  *kafkarun.Producer
	store     dedupe.Store
	closeDB   func()
	first     firstCall
	// redisTrips counts the round trips of herald's Redis hot path
	// (startHerald's stores; nil for a store the caller brought).
	redisTrips func() uint64
}

type pipelineConfig struct {
	brokers     []string
	dispatch    bool // run the dispatcher stage too
	channels    []notification.Channel
	sendLatency time.Duration
	maxInFlight int
	partitions  int
	// suppressions is checked before every send, as in herald run; nil
	// for the naive baseline, which has no list.
	suppressions suppress.Store
	// redis is where herald's and the baseline's Redis clients connect
	// (the infrastructure process's proxy); nil = redis-server's socket.
	redis *redis.Options
	// prefs is where herald's dispatcher looks up people's preferences;
	// nil for none.
	prefs prefs.Store
	// stages, when set, times every record herald's consumers handle.
	stages *stages
}

func startHerald(ctx context.Context, env *Env, cfg pipelineConfig, t *tracker) (*heraldPipeline, error) {
	defer window(ctx, "herald")()
	hs, err := env.heraldRedis(cfg.redis)
	if err != nil {
		return nil, err
	}
	cfg.suppressions, cfg.prefs = hs.list, hs.prefs
	hp, err := startHeraldWith(ctx, env.Templates, hs.store, hs.close, cfg, t)
	if err != nil {
		return nil, err
	}
	hp.redisTrips = hs.roundTrips
	return hp, nil
}

func startHeraldWith(ctx context.Context, tpl *templates.Set, store dedupe.Store, closeDB func(), cfg pipelineConfig, t *tracker) (*heraldPipeline, error) {
	var owned []string
	for _, name := range topics.Owned() {
		owned = append(owned, name)
	}
	if err := createTopics(ctx, cfg.brokers, cfg.partitions, owned...); err != nil {
		closeDB()
		return nil, err
	}
	hp := &heraldPipeline{
		producer: kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: cfg.brokers}),
		store:    store,
		closeDB:  closeDB,
	}
	// The stages herald run builds (package pipeline), on the defaults of
	// every setting (benchCommon).
	common := benchCommon(hp.producer)
	common.Config.EventsTopic = eventsTopic
	if cfg.dispatch {
		st := pipeline.Dispatch(common, newPlanner(tpl, cfg.prefs))
		c, err := startStage(common, st, kafkarun.ConsumerConfig{Brokers: cfg.brokers, MaxInFlight: cfg.maxInFlight},
			hp.first.wrap(st.Handler), cfg.stages)
		if err != nil {
			hp.close()
			return nil, err
		}
		hp.consumers = append(hp.consumers, c)
	}
	for _, ch := range cfg.channels {
		guard, err := pipeline.NewBreaker(common, ch, &sink{latency: cfg.sendLatency, t: t})
		if err != nil {
			hp.close()
			return nil, err
		}
		st, err := pipeline.Deliver(common, pipeline.Channel{
			Name: ch, Guard: guard, Renderer: tpl, Store: store, Suppressions: cfg.suppressions, Owner: "bench-" + string(ch),
			Wait: pipeline.NewWait(common, nil, nil, nil), // caps off (benchCommon)
		})
		if err != nil {
			hp.close()
			return nil, err
		}
		c, err := startStage(common, st, kafkarun.ConsumerConfig{Brokers: cfg.brokers, MaxInFlight: cfg.maxInFlight},
			hp.first.wrap(st.Handler), cfg.stages)
		if err != nil {
			hp.close()
			return nil, err
		}
		hp.consumers = append(hp.consumers, c)
	}
	return hp, nil
}

func (hp *heraldPipeline) close() {
	stopAll(hp.consumers)
	hp.producer.Close()
	hp.closeDB()
}

const eventsTopic = "gym.bookings.v1"

// naivePipeline is the same stages as loops a team writes first: one
// message at a time, a synchronous produce per notification, one Redis
// round trip per idempotency step, a synchronous commit per message.
type naivePipeline struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errs    chan error
	readers []*kafka.Reader
	closers []func()
	first   firstCall
}

func naiveTopic(ch notification.Channel) string { return "naive." + string(ch) + ".v1" }

func startNaive(ctx context.Context, env *Env, cfg pipelineConfig, events string, t *tracker) (*naivePipeline, error) {
	defer window(ctx, "baseline")()
	var names []string
	for _, ch := range cfg.channels {
		names = append(names, naiveTopic(ch))
	}
	if err := createTopics(ctx, cfg.brokers, cfg.partitions, names...); err != nil {
		return nil, err
	}
	store, client, err := env.store(1, cfg.redis)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	np := &naivePipeline{cancel: cancel, errs: make(chan error, 8)}
	// The naive dispatcher looks people's preferences up too: one pipeline
	// per event, from its one loop.
	choices := prefs.NewRedis(client, "")
	np.closers = append(np.closers, func() { _ = choices.Close(); store.Close(); client.Close() })
	run := func(group, topic string, handle func(ctx context.Context, m *kafka.Message) error) {
		r := naiveReader(cfg.brokers, group, topic)
		np.readers = append(np.readers, r)
		np.wg.Add(1)
		go func() {
			defer np.wg.Done()
			if err := naiveRun(ctx, r, func(ctx context.Context, m *kafka.Message) error {
				np.first.mark()
				return handle(ctx, m)
			}); err != nil {
				np.errs <- fmt.Errorf("%s: %w", group, err)
			}
		}()
	}
	if cfg.dispatch {
		w := naiveWriter(cfg.brokers)
		np.closers = append(np.closers, func() { w.Close() })
		p := newPlanner(env.Templates, choices)
		run("naive-dispatch", events, func(ctx context.Context, m *kafka.Message) error {
			ns, err := p.Plan(m.Value)
			if errors.Is(err, dispatcher.ErrUnknownType) {
				return nil // skipped, as the dispatcher does
			}
			if err != nil {
				return err // the preferences could not be looked up
			}
			for i := range ns {
				b, err := notification.Encode(&ns[i])
				if err != nil {
					return err
				}
				if err := w.WriteMessages(ctx, kafka.Message{Topic: naiveTopic(ns[i].Channel), Key: []byte(ns[i].RecipientID), Value: b}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, ch := range cfg.channels {
		s := &sink{latency: cfg.sendLatency, t: t}
		owner := "naive-" + string(ch)
		run("naive-"+string(ch), naiveTopic(ch), func(ctx context.Context, m *kafka.Message) error {
			n, err := notification.Decode(m.Value)
			if err != nil {
				return err
			}
			c, err := store.Claim(ctx, n.ID, owner, 45*time.Second)
			if err != nil {
				return err
			}
			if !c.Acquired {
				return nil
			}
			msg, err := env.Templates.Render(n)
			if err != nil {
				return err
			}
			r, err := s.Send(ctx, msg)
			if err != nil {
				return err
			}
			return store.MarkSent(ctx, n.ID, owner, r.ProviderMessageID)
		})
	}
	return np, nil
}

// naiveRun is naiveLoop without a limit: it runs until ctx ends.
func naiveRun(ctx context.Context, r *kafka.Reader, handle func(ctx context.Context, m *kafka.Message) error) error {
	for {
		m, err := r.FetchMessage(ctx)
		if err == nil {
			err = handle(ctx, &m)
		}
		if err == nil {
			err = r.CommitMessages(ctx, m)
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil // stopped: the loop ends with the run
			}
			return err
		}
	}
}

func (np *naivePipeline) close() error {
	np.cancel()
	np.wg.Wait()
	for _, r := range np.readers {
		r.Close()
	}
	for i := len(np.closers) - 1; i >= 0; i-- {
		np.closers[i]()
	}
	close(np.errs)
	return <-np.errs
}
