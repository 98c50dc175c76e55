package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"syscall"
	"time"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/pipeline"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
)

// The plumbing floor: the pipeline scenario's records moved through the
// same Kafka and Redis calls by stand-ins for herald's stages. A stand-in
// dispatcher publishes each event's records, encoded before the clock
// starts, as the dispatcher would (one grouped publish per event: the
// notifications due now to their channel's topic with the same keys,
// values and event-id header, the scheduler's records for the ones held
// and the event's cancellations); stand-in channel workers read a
// notification's id, channel and address from the front of its record and
// make the three Redis calls a delivery makes (suppression lookup, claim,
// mark sent), then tell the tracker. Like herald's stages they run on
// herald's consumer runtime (kafkarun: its fetcher, per-key dispatch,
// committer and grouped producer) and its coalescing Redis clients, and
// each group reads two topics, as herald's do (events and derived events; a
// channel and its retry topic). What the floor leaves out is the stages'
// own logic: parsing, planning, encoding and decoding, rendering, logs and
// metrics.

func plumbingTopic(ch notification.Channel) string { return "plumbing." + string(ch) + ".v1" }

// plumbingRetryTopic is a channel stand-in's second topic, empty as a
// channel's retry topic is in the pipeline scenario.
func plumbingRetryTopic(ch notification.Channel) string {
	return "plumbing." + string(ch) + ".retry.v1"
}

const (
	// plumbingScheduleTopic takes the scheduler's records (nothing reads
	// them, as nothing reads herald's in the pipeline scenario).
	plumbingScheduleTopic = "plumbing.schedule.v1"
	// plumbingDerivedTopic is the stand-in dispatcher's second topic, empty
	// as herald's derived-events topic is in the pipeline scenario.
	plumbingDerivedTopic = "plumbing.derived.v1"
)

// plumbingRecord is one record a stand-in dispatcher publishes: spans of
// the arena, so that the records' bytes are not Go heap. Held on the heap
// (118 MB for the pipeline's events), they made the collector run less
// often in the floor's window than in herald's, as a ballast does.
type plumbingRecord struct {
	topic               string
	key, value, eventID span
	notification        bool // a channel topic's record, carrying the event-id header
}

type span struct{ off, len int }

// plumbingPlan is every event's records: records[events[i]:events[i+1]] are
// those of the i-th event, found by the hash of its bytes (byHash).
type plumbingPlan struct {
	arena   []byte // mmap'd, outside the Go heap
	records []plumbingRecord
	events  []int
	byHash  map[uint64]int
	seed    maphash.Seed
	ids     []string // the notifications the channel stand-ins are to receive
	// people[i] are the ids the dispatcher looks preferences up for when
	// it plans the i-th event (none when it looks none up).
	people [][]string
}

func (pp *plumbingPlan) bytes(s span) []byte { return pp.arena[s.off : s.off+s.len : s.off+s.len] }

// messages are the records of the event whose bytes are v, or nil, and
// the people whose preferences the dispatcher looks up for it.
func (pp *plumbingPlan) messages(v []byte, now time.Time) ([]queue.Message, []string) {
	i, ok := pp.byHash[maphash.Bytes(pp.seed, v)]
	if !ok {
		return nil, nil
	}
	people := pp.people[i]
	rs := pp.records[pp.events[i]:pp.events[i+1]]
	if len(rs) == 0 {
		return nil, people
	}
	ms := make([]queue.Message, len(rs))
	var hs []queue.Header // one for all of the event's notifications, as the dispatcher's
	for j := range rs {
		r := &rs[j]
		ms[j] = queue.Message{Topic: r.topic, Key: pp.bytes(r.key), Value: pp.bytes(r.value), Time: now}
		if r.notification {
			if hs == nil {
				hs = []queue.Header{{Key: dispatcher.HeaderEventID, Value: pp.bytes(r.eventID)}}
			}
			ms[j].Headers = hs
		}
	}
	return ms, people
}

func (pp *plumbingPlan) close() {
	if pp.arena != nil {
		_ = syscall.Munmap(pp.arena)
		pp.arena = nil
	}
}

// newPlumbingPlan plans values as the dispatcher does and lays their
// records out in an anonymous mapping.
func newPlumbingPlan(ctx context.Context, tpl *templates.Set, values [][]byte) (*plumbingPlan, error) {
	p := newPlanner(tpl, nil)
	var people []string // the ids the planner looked up for the event
	p.Choices = func(_ context.Context, ids []string) (map[string]templates.Choices, error) {
		people = append([]string(nil), ids...)
		return nil, nil
	}
	type built struct {
		topic               string
		key, value, eventID []byte
		notification        bool
	}
	var all []built
	pp := &plumbingPlan{byHash: make(map[uint64]int, len(values)), seed: maphash.MakeSeed()}
	size := 0
	add := func(b built) {
		all = append(all, b)
		size += len(b.key) + len(b.value) + len(b.eventID)
	}
	for i, v := range values {
		// Planning 20,000 events takes a second or two: an interrupt
		// need not wait for it.
		if i%1000 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		h := maphash.Bytes(pp.seed, v)
		if _, dup := pp.byHash[h]; dup {
			return nil, errors.New("plumbing: two events hash alike")
		}
		pp.byHash[h] = len(pp.events)
		pp.events = append(pp.events, len(all))
		people = nil
		plan, err := p.PlanEvent(ctx, v)
		pp.people = append(pp.people, people)
		if errors.Is(err, dispatcher.ErrUnknownType) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("plumbing: %w", err)
		}
		if len(plan.Cancels) > 0 {
			c, err := schedule.Message(schedule.CancelRecord(plan.EventID, plan.EventTime, plan.Cancels, plan.Now))
			if err != nil {
				return nil, fmt.Errorf("plumbing: %w", err)
			}
			add(built{topic: plumbingScheduleTopic, key: c.Key, value: c.Value})
		}
		for i := range plan.Notifications {
			n := &plan.Notifications[i]
			if n.ViaScheduler(plan.Now) {
				m, err := schedule.ScheduleMessage(n, n.DueAt, topics.Channel(n.Channel), plan.Now)
				if err != nil {
					return nil, fmt.Errorf("plumbing: %w", err)
				}
				add(built{topic: plumbingScheduleTopic, key: m.Key, value: m.Value})
				continue
			}
			b, err := notification.Encode(n)
			if err != nil {
				return nil, fmt.Errorf("plumbing: %w", err)
			}
			add(built{topic: plumbingTopic(n.Channel), key: []byte(n.RecipientID), value: b, eventID: []byte(n.EventID), notification: true})
			pp.ids = append(pp.ids, n.ID)
		}
	}
	pp.events = append(pp.events, len(all))
	arena, err := anonMap(size)
	if err != nil {
		return nil, fmt.Errorf("plumbing: %w", err)
	}
	pp.arena = arena
	off := 0
	put := func(b []byte) span {
		s := span{off, len(b)}
		off += copy(arena[off:], b)
		return s
	}
	pp.records = make([]plumbingRecord, len(all))
	for i, b := range all {
		pp.records[i] = plumbingRecord{topic: b.topic, key: put(b.key), value: put(b.value), eventID: put(b.eventID),
			notification: b.notification}
	}
	return pp, nil
}

// notificationFront reads the first fields of a notification in the binary
// form (notification/codec.go): its id, channel and address, without
// decoding the rest. ok is false for anything else.
func notificationFront(b []byte) (id, channel, to string, ok bool) {
	if len(b) < 2 || b[0] != 0x01 {
		return "", "", "", false
	}
	b = b[1:]
	if _, n := binary.Uvarint(b); n <= 0 {
		return "", "", "", false
	} else {
		b = b[n:]
	}
	// id, event_id, event_type, template, channel, locale, recipient_id, to
	var f [8]string
	for i := range f {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return "", "", "", false
		}
		f[i] = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	return f[0], f[4], f[7], true
}

// runPlumbing delivers every event of values through the plumbing alone.
// It returns the CPU that took, from before its topics, Redis clients and
// consumers are made to the last notification received (as the pipeline
// times herald, whose window includes the same), and how many
// notifications were delivered.
func runPlumbing(ctx context.Context, env *Env, cfg pipelineConfig, values [][]byte) (time.Duration, int, error) {
	pp, err := newPlumbingPlan(ctx, env.Templates, values)
	if err != nil {
		return 0, 0, err
	}
	// The mapping is unmapped last, and only after a run that delivered
	// everything: then every publish has returned. A run that ended early
	// (interrupted, or a broker gone) may leave a grouped write that Close
	// abandoned still reading it; unmapping would crash the process, so the
	// mapping stays until the process exits.
	delivered := false
	defer func() {
		if delivered {
			pp.close()
		}
	}()
	t := newTracker() // expecting what herald's tracker expects
	t.expect(pp.ids...)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// A stand-in that meets an error no retry will mend ends the run at
	// once, rather than retrying until the tracker's wait runs out.
	fatal := func(err error) error {
		if failure.ClassOf(err) != failure.Retryable {
			cancel(fmt.Errorf("plumbing: %w", err))
		}
		return err
	}

	runtime.GC() // the plan's garbage is not the floor's
	defer window(ctx, "floor")()
	// From here, like cpu0 (creating the topics and starting the consumers
	// are the floor's too), to cpu's reading; on an error, to the return.
	stopProfile := env.profileWindow("pipeline", "floor")
	defer stopProfile()
	cpu0 := cpuTime()
	names := []string{plumbingScheduleTopic, plumbingDerivedTopic}
	for _, ch := range cfg.channels {
		names = append(names, plumbingTopic(ch), plumbingRetryTopic(ch))
	}
	if err := createTopics(ctx, cfg.brokers, cfg.partitions, names...); err != nil {
		return 0, 0, fmt.Errorf("plumbing: %w", err)
	}
	hs, err := env.heraldRedis(cfg.redis)
	if err != nil {
		return 0, 0, fmt.Errorf("plumbing: %w", err)
	}
	defer hs.close()
	store, list := hs.store, hs.list
	// Each consumer reports to the metrics and to liveness as herald's do.
	live, metrics := &kafkarun.Liveness{}, newMetrics()
	consumerConfig := func(group string, topics ...string) kafkarun.ConsumerConfig {
		cc := kafkarun.ConsumerConfig{Brokers: cfg.brokers, GroupID: group, Topics: topics,
			Observer: live.Observe(group, pipeline.NewObserver(metrics, group, topics, nil))}
		consumerTimings(&cc, config.Defaults()) // as herald's consumers' (startStage)
		return cc
	}
	tracked := func(cc kafkarun.ConsumerConfig, h queue.Handler) queue.Handler {
		return live.Track(cc.GroupID, cc.Topics, h)
	}
	p := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: cfg.brokers})
	defer p.Close()
	var cs []*consumer
	defer func() { stopAll(cs) }()
	cc := consumerConfig("plumbing-dispatcher", eventsTopic, plumbingDerivedTopic)
	c, err := startConsumer(cc, tracked(cc,
		func(ctx context.Context, m *queue.Message) error {
			ms, people := pp.messages(m.Value, time.Now())
			if len(people) > 0 {
				if _, err := hs.prefs.Lookup(ctx, people); err != nil {
					return fatal(err)
				}
			}
			if len(ms) > 0 {
				if err := p.Publish(ctx, ms...); err != nil {
					return fatal(err)
				}
			}
			return nil
		}))
	if err != nil {
		return 0, 0, fmt.Errorf("plumbing: %w", err)
	}
	cs = append(cs, c)
	for _, ch := range cfg.channels {
		cc := consumerConfig("plumbing-"+string(ch), plumbingTopic(ch), plumbingRetryTopic(ch))
		c, err := startConsumer(cc, tracked(cc,
			func(ctx context.Context, m *queue.Message) error {
				id, channel, to, ok := notificationFront(m.Value)
				if !ok {
					return fatal(failure.Errorf(failure.Poison, failure.ReasonInvalid, "plumbing: record at offset %d is not a notification", m.Offset))
				}
				look := suppress.Begin(ctx, list, channel, to) // with the claim, as the worker does
				if _, err := store.Claim(ctx, id, "plumbing", time.Minute); err != nil {
					return fatal(err)
				}
				if _, _, err := look.Wait(); err != nil && !errors.Is(err, suppress.ErrInvalid) {
					return fatal(err)
				}
				if err := store.MarkSent(ctx, id, "plumbing", "sent-"+id); err != nil {
					return fatal(err)
				}
				t.receive(id, nil)
				return nil
			}))
		if err != nil {
			return 0, 0, fmt.Errorf("plumbing: %w", err)
		}
		cs = append(cs, c)
	}
	if err := t.wait(ctx, 3*time.Minute); err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return 0, 0, cause
		}
		return 0, 0, fmt.Errorf("plumbing: %w", err)
	}
	cpu := cpuTime() - cpu0
	stopProfile()
	delivered = true
	return cpu, len(pp.ids), nil
}
