package kafkarun_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// produceTo writes one record to one partition with kafka-go's client, not
// herald's producer, whose balancer chooses the partition. Its transport
// is new, so it knows partitions added a moment ago.
func produceTo(t *testing.T, brokers []string, topic string, partition int, value string) {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Produce(ctx, &kafka.ProduceRequest{Topic: topic, Partition: partition, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{Value: kafka.NewBytes([]byte(value))})})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatalf("produce to %s/%d: %v", topic, partition, err)
	}
}

// addPartitions grows topic to count partitions, as kafka-topics.sh --alter
// does.
func addPartitions(t *testing.T, ctx context.Context, brokers []string, topic string, count int) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	resp, err := client.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: int32(count)}}})
	if err != nil || resp.Errors[topic] != nil {
		t.Fatalf("create partitions: %v %v", err, resp)
	}
}

// recorder records the values a consumer handled.
type recorder struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (r *recorder) handle(_ context.Context, m *queue.Message) error {
	r.mu.Lock()
	r.seen[string(m.Value)] = true
	r.mu.Unlock()
	return nil
}

// has returns a poll condition: v was handled.
func (r *recorder) has(v string) func() bool {
	return func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.seen[v] }
}

// TestConsumerFollowsPartitionChanges is a group started while one of its
// topics is missing (a dispatcher started before the events topic was
// created), then the runbook's "add partitions" (docs/operations.md), then
// the missing topic created: every record is consumed, those on partitions
// the group did not have when it formed within a watch interval or two,
// not at the next rebalance (which may be days away). Before the watch, none
// of the three was: kafka-go's leader assigned nothing while a subscribed
// topic was missing, and nothing noticed partitions added later.
func TestConsumerFollowsPartitionChanges(t *testing.T) {
	c := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafkarun.EnsureTopics(ctx, c.Brokers(), nil, []kafkarun.TopicSpec{{Name: "grow", Partitions: 2, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{seen: map[string]bool{}}
	h, has := rec.handle, rec.has
	cons, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "watch", Topics: []string{"grow", "late"},
		CommitInterval: 20 * time.Millisecond, SessionTimeout: 3 * time.Second, RebalanceTimeout: 3 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond, PartitionWatchInterval: 200 * time.Millisecond}, h)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx) }()
	defer func() { stop(); <-done }()

	produceTo(t, c.Brokers(), "grow", 1, "before")
	poll.Until(t, 30*time.Second, "the record on an original partition", has("before"))

	addPartitions(t, ctx, c.Brokers(), "grow", 4)
	produceTo(t, c.Brokers(), "grow", 3, "added")
	poll.Until(t, 15*time.Second, "the record on an added partition", has("added"))

	if err := kafkarun.EnsureTopics(ctx, c.Brokers(), nil, []kafkarun.TopicSpec{{Name: "late", Partitions: 2, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	produceTo(t, c.Brokers(), "late", 1, "late")
	poll.Until(t, 15*time.Second, "the record on a topic created after start", has("late"))
}

// TestGroupFollowsChangesTogether: three members, the first of which (the
// group's leader) never checks on its own ticker. Partitions added and a
// topic created are still consumed, promptly: a member that sees a change
// leaves the group and joins it again, which rebalances everybody (a
// follower that only rejoined was handed the same generation back, and
// nothing was assigned the new partitions), and each member checks its
// subscription when a generation starts, so the leader follows at once.
// The deadlines are half the rebalance timeout: a member whose watcher
// ended its generation while it left raced a join of the old subscription
// against the close, and the group waited a whole rebalance timeout.
func TestGroupFollowsChangesTogether(t *testing.T) {
	c := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kafkarun.EnsureTopics(ctx, c.Brokers(), nil, []kafkarun.TopicSpec{{Name: "grow", Partitions: 2, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{seen: map[string]bool{}}
	h, has := rec.handle, rec.has
	const rebalance = 20 * time.Second
	start := func(watch time.Duration) *kafkarun.Consumer {
		cons, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "together", Topics: []string{"grow", "late"},
			CommitInterval: 20 * time.Millisecond, SessionTimeout: rebalance, RebalanceTimeout: rebalance,
			HeartbeatInterval: 200 * time.Millisecond, PartitionWatchInterval: watch}, h)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cons.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done })
		return cons
	}
	leader := start(time.Hour)
	poll.Until(t, 30*time.Second, "the first member to join", leader.Joined)
	others := []*kafkarun.Consumer{start(200 * time.Millisecond), start(200 * time.Millisecond)}
	poll.Until(t, 30*time.Second, "all three to join", func() bool { return leader.Joined() && others[0].Joined() && others[1].Joined() })
	produceTo(t, c.Brokers(), "grow", 1, "before")
	poll.Until(t, 30*time.Second, "the record on an original partition", has("before"))

	addPartitions(t, ctx, c.Brokers(), "grow", 4)
	produceTo(t, c.Brokers(), "grow", 3, "added")
	poll.Until(t, rebalance/2, "the record on an added partition", has("added"))

	if err := kafkarun.EnsureTopics(ctx, c.Brokers(), nil, []kafkarun.TopicSpec{{Name: "late", Partitions: 2, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	produceTo(t, c.Brokers(), "late", 0, "late")
	poll.Until(t, rebalance/2, "the record on a topic created after start", has("late"))
	produceTo(t, c.Brokers(), "grow", 2, "after")
	poll.Until(t, rebalance/2, "a record on the first topic after the change", has("after"))
}
