package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// createTopics creates topics with the given partition count.
func createTopics(ctx context.Context, brokers []string, partitions int, names ...string) error {
	var specs []kafkarun.TopicSpec
	for _, n := range names {
		specs = append(specs, kafkarun.TopicSpec{Name: n, Partitions: partitions, Replication: 1})
	}
	return kafkarun.EnsureTopics(ctx, brokers, nil, specs)
}

// preload writes msgs in large batches, as fast as the cluster takes them;
// it is how a scenario queues its input before the clock starts.
func preload(ctx context.Context, brokers []string, msgs []kafka.Message) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    2000,
		BatchBytes:   1 << 20, // the broker's default message.max.bytes
		BatchTimeout: 5 * time.Millisecond,
	}
	defer func() {
		if ctx.Err() != nil {
			// Interrupted: Close would wait out the batches still
			// retrying against a broker the Ctrl-C stopped too (22 s).
			go w.Close()
			return
		}
		w.Close()
	}()
	const chunk = 20000
	for i := 0; i < len(msgs); i += chunk {
		if err := w.WriteMessages(ctx, msgs[i:min(i+chunk, len(msgs))]...); err != nil {
			var we kafka.WriteErrors
			if errors.As(err, &we) {
				for _, e := range we {
					if e != nil {
						return fmt.Errorf("preload: %d of %d messages failed: %w", we.Count(), len(we), e)
					}
				}
			}
			return fmt.Errorf("preload: %w", err)
		}
	}
	return nil
}

// consumer runs a kafkarun consumer until stop is called, which drains,
// commits and leaves the group like SIGTERM does.
type consumer struct {
	c    *kafkarun.Consumer
	stop context.CancelFunc
	done chan error
}

func startConsumer(cfg kafkarun.ConsumerConfig, h queue.Handler) (*consumer, error) {
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout, cfg.RebalanceTimeout, cfg.HeartbeatInterval = 6*time.Second, 6*time.Second, 500*time.Millisecond
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = runtimeLog
	}
	c, err := kafkarun.NewConsumer(cfg, h)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &consumer{c: c, stop: cancel, done: make(chan error, 1)}
	go func() { out.done <- c.Run(ctx) }()
	return out, nil
}

func (c *consumer) Stop() error {
	c.stop()
	return <-c.done
}

func stopAll(cs []*consumer) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Stop() }()
	}
	wg.Wait()
}

// firstCall wraps a handler to record when it was first called: scenarios
// time from the first message handled, so group joins (the same for herald
// and its baseline, and not what is measured) stay out of the figure.
type firstCall struct {
	once sync.Once
	at   atomic.Int64
}

func (f *firstCall) mark() {
	f.once.Do(func() { f.at.Store(time.Now().UnixNano()) })
}

func (f *firstCall) time() time.Time { return time.Unix(0, f.at.Load()) }

func (f *firstCall) wrap(h queue.Handler) queue.Handler {
	return func(ctx context.Context, m *queue.Message) error {
		f.mark()
		return h(ctx, m)
	}
}

// committed returns the group's committed offsets summed over the topic's
// partitions (how many messages are committed when offsets start at 0).
func committed(ctx context.Context, brokers []string, group, topic string, partitions int) (int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		return 0, err
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	var sum int64
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return 0, p.Error
		}
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum, nil
}

// naiveReader is the loop a team writes first: a kafka-go Reader in a
// consumer group, FetchMessage → handle → CommitMessages, one at a time.
func naiveReader(brokers []string, group, topic string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  6 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		// CommitInterval 0: CommitMessages commits synchronously.
	})
}

// naiveLoop runs FetchMessage → handle → CommitMessages until limit
// messages are committed, and returns the time from the first fetched
// message to the last commit.
func naiveLoop(ctx context.Context, r *kafka.Reader, limit int, handle func(ctx context.Context, m *kafka.Message) error) (time.Duration, error) {
	var first time.Time
	for i := 0; i < limit; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return 0, err
		}
		if i == 0 {
			first = time.Now()
		}
		if err := handle(ctx, &m); err != nil {
			return 0, err
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			return 0, err
		}
	}
	return time.Since(first), nil
}

// naiveWriter writes one message per call and waits for it: no batching.
func naiveWriter(brokers []string) *kafka.Writer {
	return &kafka.Writer{
		Addr: kafka.TCP(brokers...), Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchSize: 1, BatchTimeout: time.Millisecond,
	}
}
