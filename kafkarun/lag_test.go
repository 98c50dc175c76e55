package kafkarun_test

import (
	"context"
	"sync"
	"testing"
	"time"

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
