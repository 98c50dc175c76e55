package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"time"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
)

// The plumbing floor: the pipeline scenario's records moved through the
// same Kafka and Redis calls with none of herald's own work. A stand-in
// dispatcher publishes each event's notifications, encoded before the clock
// starts, as the dispatcher would (one grouped publish per event, the same
// keys, values and event-id header); stand-in channel workers make the
// three Redis calls a delivery makes (suppression lookup, claim, mark
// sent) and tell the tracker. Both run on kafkarun, as herald's stages do,
// so the floor counts kafka-go, go-redis, the consumer's per-record
// dispatch and the garbage they make; herald's CPU above it is its own
// (parsing, planning, encoding and decoding, rendering, logs and metrics).

// Header keys that carry what a stand-in worker needs without decoding.
const (
	plumbingID      = "plumbing-id"
	plumbingChannel = "plumbing-channel"
	plumbingTo      = "plumbing-to"
)

func plumbingTopic(ch notification.Channel) string { return "plumbing." + string(ch) + ".v1" }

// plumbingScheduleTopic takes the scheduler's records (nothing reads them,
// as nothing reads herald's in the pipeline scenario).
const plumbingScheduleTopic = "plumbing.schedule.v1"

// runPlumbing delivers every event of values through the plumbing alone
// and returns the CPU it took, from before its consumers start to the last
// notification received, as the pipeline scenario times herald.
func runPlumbing(ctx context.Context, env *Env, cfg pipelineConfig, values [][]byte) (time.Duration, error) {
	records, ids, err := plumbingRecords(env.Templates, values)
	if err != nil {
		return 0, err
	}
	t := newTracker()
	t.expect(ids...)
	names := []string{plumbingScheduleTopic}
	for _, ch := range cfg.channels {
		names = append(names, plumbingTopic(ch))
	}
	if err := createTopics(ctx, cfg.brokers, cfg.partitions, names...); err != nil {
		return 0, err
	}
	store, client, err := env.store(0, cfg.redis)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	defer store.Close()
	list := suppress.NewRedis(client, "", nil)
	defer list.Close()

	cpu0 := cpuTime()
	p := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: cfg.brokers})
	defer p.Close()
	var cs []*consumer
	defer func() { stopAll(cs) }()
	c, err := startConsumer(kafkarun.ConsumerConfig{Brokers: cfg.brokers, GroupID: "plumbing-dispatcher", Topics: []string{eventsTopic}},
		func(ctx context.Context, m *queue.Message) error {
			if ms := records[string(m.Value)]; len(ms) > 0 {
				return p.Publish(ctx, ms...)
			}
			return nil
		})
	if err != nil {
		return 0, err
	}
	cs = append(cs, c)
	for _, ch := range cfg.channels {
		c, err := startConsumer(kafkarun.ConsumerConfig{Brokers: cfg.brokers, GroupID: "plumbing-" + string(ch), Topics: []string{plumbingTopic(ch)}},
			func(ctx context.Context, m *queue.Message) error {
				var id, channel, to string
				for _, h := range m.Headers {
					switch h.Key {
					case plumbingID:
						id = string(h.Value)
					case plumbingChannel:
						channel = string(h.Value)
					case plumbingTo:
						to = string(h.Value)
					}
				}
				if _, _, err := list.Lookup(ctx, channel, to); err != nil && !errors.Is(err, suppress.ErrInvalid) {
					return err
				}
				if _, err := store.Claim(ctx, id, "plumbing", time.Minute); err != nil {
					return err
				}
				if err := store.MarkSent(ctx, id, "plumbing", "sent-"+id); err != nil {
					return err
				}
				t.receive(id)
				return nil
			})
		if err != nil {
			return 0, err
		}
		cs = append(cs, c)
	}
	if err := t.wait(ctx, 3*time.Minute); err != nil {
		return 0, fmt.Errorf("plumbing: %w", err)
	}
	return cpuTime() - cpu0, nil
}

// plumbingRecords is what the dispatcher publishes for each event of
// values, keyed by the event's bytes: a channel topic record for each
// notification due now (plumbing topics, with the headers the stand-in
// workers read), and, in the same write, the scheduler's records for those
// it holds and for the event's cancellations. ids are the notifications
// the channel workers are to receive.
func plumbingRecords(tpl *templates.Set, values [][]byte) (map[string][]queue.Message, []string, error) {
	p := &dispatcher.Planner{Templates: tpl}
	records := make(map[string][]queue.Message, len(values))
	var ids []string
	for _, v := range values {
		plan, err := p.PlanEvent(context.Background(), v)
		if errors.Is(err, dispatcher.ErrUnknownType) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("plumbing: %w", err)
		}
		ms := make([]queue.Message, 0, len(plan.Notifications)+1)
		if len(plan.Cancels) > 0 {
			c, err := schedule.Message(&schedule.Record{Kind: schedule.KindCancel, Keys: plan.Cancels, EventID: plan.EventID, At: plan.Now})
			if err != nil {
				return nil, nil, fmt.Errorf("plumbing: %w", err)
			}
			c.Topic = plumbingScheduleTopic
			ms = append(ms, c)
		}
		for i := range plan.Notifications {
			n := &plan.Notifications[i]
			if n.DueAt.After(plan.Now) || len(n.CancelKeys) > 0 {
				r, err := schedule.Schedule(n, n.DueAt, topics.Channel(n.Channel), plan.Now)
				if err != nil {
					return nil, nil, fmt.Errorf("plumbing: %w", err)
				}
				m, err := schedule.Message(r)
				if err != nil {
					return nil, nil, fmt.Errorf("plumbing: %w", err)
				}
				m.Topic = plumbingScheduleTopic
				ms = append(ms, m)
				continue
			}
			b, err := notification.Encode(n)
			if err != nil {
				return nil, nil, fmt.Errorf("plumbing: %w", err)
			}
			ms = append(ms, queue.Message{Topic: plumbingTopic(n.Channel), Key: []byte(n.RecipientID), Value: b, Headers: []queue.Header{
				{Key: dispatcher.HeaderEventID, Value: []byte(n.EventID)},
				{Key: plumbingID, Value: []byte(n.ID)}, {Key: plumbingChannel, Value: []byte(n.Channel)}, {Key: plumbingTo, Value: []byte(n.To)},
			}})
			ids = append(ids, n.ID)
		}
		records[string(v)] = ms
	}
	return records, ids, nil
}

// gcCPU is the CPU the garbage collector has spent in this process, as the
// runtime estimates it.
func gcCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}
