package kafkarun_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// TestLagPoller: lag is the records between the group's committed offset
// and the high watermark, all of them before the group has committed
// anything, and zero once a consumer has drained the topic.
func TestLagPoller(t *testing.T) {
	const topic, group, parts, n = "lag.v1", "lag-group", 3, 60
	c, p := setup(t, topic, parts)
	produce(t, p, topic, n, 12)

	var mu sync.Mutex
	got := map[int]kafkarun.PartitionLag{}
	lp, err := kafkarun.NewLagPoller(kafkarun.LagConfig{
		Brokers: c.Brokers(), Groups: map[string][]string{group: {topic}},
		Report: func(l kafkarun.PartitionLag) {
			mu.Lock()
			defer mu.Unlock()
			if l.Group != group || l.Topic != topic {
				t.Errorf("report for %s %s", l.Group, l.Topic)
			}
			got[l.Partition] = l
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	total := func() (sum int64, ends int64) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range got {
			sum += l.Lag
			ends += l.End
		}
		return sum, ends
	}
	ctx := context.Background()
	if err := lp.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != parts {
		t.Fatalf("lag for %d partitions, want %d", len(got), parts)
	}
	if lag, ends := total(); lag != n || ends != n {
		t.Errorf("before consuming: lag %d, high watermarks %d; want %d and %d", lag, ends, n, n)
	}
	for _, l := range got {
		if l.Committed != -1 {
			t.Errorf("partition %d: committed %d before any commit", l.Partition, l.Committed)
		}
	}

	cons, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{
		Brokers: c.Brokers(), GroupID: group, Topics: []string{topic},
		CommitInterval: 20 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 2 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond,
	}, func(context.Context, *queue.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { cons.Run(rctx); close(done) }()
	defer func() { stop(); <-done }()

	poll.Until(t, 45*time.Second, "the lag poller to see the group drained", func() bool {
		if err := lp.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		lag, _ := total()
		return lag == 0
	})
	for _, l := range got {
		if l.Committed != l.End {
			t.Errorf("partition %d: drained but committed %d of %d", l.Partition, l.Committed, l.End)
		}
	}
}

func TestLagPollerConfig(t *testing.T) {
	report := func(kafkarun.PartitionLag) {}
	for name, cfg := range map[string]kafkarun.LagConfig{
		"no brokers": {Groups: map[string][]string{"g": {"t"}}, Report: report},
		"no groups":  {Brokers: []string{"k:9092"}, Report: report},
		"no report":  {Brokers: []string{"k:9092"}, Groups: map[string][]string{"g": {"t"}}},
	} {
		if _, err := kafkarun.NewLagPoller(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestLagPollerSkipsMissingTopic: a group one of whose topics does not
// exist (a dispatcher started before the events topic) still reports its
// other topic's lag; the poll failed for the whole group before.
func TestLagPollerSkipsMissingTopic(t *testing.T) {
	const topic = "lag.present"
	c, p := setup(t, topic, 2)
	produce(t, p, topic, 10, 4)
	var mu sync.Mutex
	var sum int64
	lp, err := kafkarun.NewLagPoller(kafkarun.LagConfig{
		Brokers: c.Brokers(), Groups: map[string][]string{"g": {"lag.missing", topic}},
		Report: func(l kafkarun.PartitionLag) {
			mu.Lock()
			defer mu.Unlock()
			if l.Topic != topic {
				t.Errorf("report for %s", l.Topic)
			}
			sum += l.Lag
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.Poll(context.Background()); err != nil {
		t.Fatalf("poll: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sum != 10 {
		t.Fatalf("lag %d, want 10", sum)
	}
}

// TestLagPollerForgetsDeletedTopic: once a group's topic is deleted, the
// partitions the poller reported for it are handed to Forget (their lag
// series, stall clocks and liveness entries are stale), and the group's
// other topic is still reported. Before, they kept their last values for
// the life of the process.
func TestLagPollerForgetsDeletedTopic(t *testing.T) {
	const kept, gone = "lag.kept", "lag.gone"
	c, p := setup(t, kept, 2)
	ctx := context.Background()
	if err := kafkarun.EnsureTopics(ctx, c.Brokers(), nil, []kafkarun.TopicSpec{{Name: gone, Partitions: 3, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	produce(t, p, kept, 4, 2)
	var mu sync.Mutex
	reported, forgotten := map[string]int{}, map[string]int{}
	tr := &kafka.Transport{MetadataTTL: 10 * time.Millisecond}
	defer tr.CloseIdleConnections()
	lp, err := kafkarun.NewLagPoller(kafkarun.LagConfig{
		Brokers: c.Brokers(), Transport: tr, Groups: map[string][]string{"g": {kept, gone}},
		Report: func(l kafkarun.PartitionLag) { mu.Lock(); reported[l.Topic]++; mu.Unlock() },
		Forget: func(l kafkarun.PartitionLag) { mu.Lock(); forgotten[l.Topic]++; mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if reported[kept] != 2 || reported[gone] != 3 {
		t.Fatalf("first poll reported %v", reported)
	}
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers()...)}
	if resp, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{gone}}); err != nil || resp.Errors[gone] != nil {
		t.Fatalf("delete: %v %v", err, resp)
	}
	poll.Until(t, 10*time.Second, "the deleted topic's partitions forgotten", func() bool {
		_ = lp.Poll(ctx) // the poll that races the deletion may fail
		mu.Lock()
		defer mu.Unlock()
		return forgotten[gone] == 3
	})
	mu.Lock()
	defer mu.Unlock()
	if forgotten[kept] != 0 {
		t.Fatalf("forgot the kept topic: %v", forgotten)
	}
}
