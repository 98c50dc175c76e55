package kafkarun_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

func setup(t *testing.T, topic string, partitions int) (*kafkatest.Cluster, *kafkarun.Producer) {
	t.Helper()
	c := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kafkarun.EnsureTopics(ctx, c.Brokers(), nil, []kafkarun.TopicSpec{{Name: topic, Partitions: partitions, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	// Creating twice is fine: existing topics are left alone.
	if err := kafkarun.EnsureTopics(ctx, c.Brokers(), nil, []kafkarun.TopicSpec{{Name: topic, Partitions: partitions, Replication: 1}}); err != nil {
		t.Fatalf("second EnsureTopics: %v", err)
	}
	p := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: c.Brokers()})
	t.Cleanup(func() { p.Close() })
	return c, p
}

func produce(t *testing.T, p *kafkarun.Producer, topic string, n, keys int) {
	t.Helper()
	msgs := make([]queue.Message, n)
	for i := range msgs {
		msgs[i] = queue.Message{Topic: topic, Key: []byte("k" + strconv.Itoa(i%keys)), Value: []byte(strconv.Itoa(i))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func committed(t *testing.T, brokers []string, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {}}}
	for i := 0; i < partitions; i++ {
		req.Topics[topic] = append(req.Topics[topic], i)
	}
	resp, err := client.OffsetFetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// TestKeyOrderAndWatermark checks that every message is handled once, that
// messages of one key never overlap and run in offset order, that different
// keys do run concurrently, and that the committed offsets end at the log end.
func TestKeyOrderAndWatermark(t *testing.T) {
	const topic, n, keys, parts = "orders", 2000, 50, 3
	c, p := setup(t, topic, parts)
	produce(t, p, topic, n, keys)

	var (
		mu       sync.Mutex
		lastSeen = map[string]int64{} // partition/key → last offset
		active   = map[string]bool{}
		seen     = map[string]bool{}
		maxConc  atomic.Int32
		conc     atomic.Int32
		done     = make(chan struct{})
		count    int
	)
	h := func(ctx context.Context, m *queue.Message) error {
		k := fmt.Sprintf("%d/%s", m.Partition, m.Key)
		mu.Lock()
		if active[k] {
			t.Errorf("key %s handled concurrently", k)
		}
		if last, ok := lastSeen[k]; ok && last >= m.Offset {
			t.Errorf("key %s: offset %d after %d", k, m.Offset, last)
		}
		active[k] = true
		lastSeen[k] = m.Offset
		mu.Unlock()
		cur := conc.Add(1)
		for {
			old := maxConc.Load()
			if cur <= old || maxConc.CompareAndSwap(old, cur) {
				break
			}
		}
		time.Sleep(time.Millisecond) // simulated provider latency, not synchronisation
		conc.Add(-1)
		mu.Lock()
		active[k] = false
		id := fmt.Sprintf("%d/%d", m.Partition, m.Offset)
		if seen[id] {
			t.Errorf("message %s handled twice", id)
		}
		seen[id] = true
		count++
		if count == n {
			close(done)
		}
		mu.Unlock()
		return nil
	}
	cons, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{
		Brokers: c.Brokers(), GroupID: "g", Topics: []string{topic},
		MaxInFlight: 64, CommitInterval: 50 * time.Millisecond,
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 5 * time.Second,
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error)
	go func() { runDone <- cons.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("handled %d of %d", count, n)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if maxConc.Load() < 10 {
		t.Errorf("max concurrency %d; keys should run in parallel", maxConc.Load())
	}
	if maxConc.Load() > 64 {
		t.Errorf("max concurrency %d exceeds MaxInFlight 64", maxConc.Load())
	}
	total := int64(0)
	for _, off := range committed(t, c.Brokers(), "g", topic, parts) {
		total += off
	}
	if total != n {
		t.Errorf("committed offsets sum to %d, want %d", total, n)
	}
}

// TestRetriesUntilDurable checks that a handler error never skips a message:
// the runtime retries it, and the watermark does not pass it meanwhile.
func TestRetriesUntilDurable(t *testing.T) {
	const topic = "flaky"
	c, p := setup(t, topic, 1)
	produce(t, p, topic, 10, 10)
	var fails atomic.Int32
	var handled sync.Map
	all := make(chan struct{})
	var once sync.Once
	var n atomic.Int32
	h := func(ctx context.Context, m *queue.Message) error {
		if m.Offset == 3 && fails.Add(1) <= 3 {
			return fmt.Errorf("redis is down")
		}
		if _, dup := handled.LoadOrStore(m.Offset, true); !dup && n.Add(1) == 10 {
			once.Do(func() { close(all) })
		}
		return nil
	}
	cons, _ := kafkarun.NewConsumer(kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "g", Topics: []string{topic}, CommitInterval: 20 * time.Millisecond}, h)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error)
	go func() { runDone <- cons.Run(ctx) }()
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatal("not all handled")
	}
	cancel()
	<-runDone
	if got := fails.Load(); got < 4 {
		t.Errorf("offset 3 tried %d times, want 4", got)
	}
	if off := committed(t, c.Brokers(), "g", topic, 1)[0]; off != 10 {
		t.Errorf("committed %d, want 10", off)
	}
}

// TestRebalanceHandsOver runs one consumer, then adds a second: the
// partitions are split, and across both every message is handled, with
// duplicates only for work that was in flight at the handover.
func TestRebalanceHandsOver(t *testing.T) {
	const topic, parts = "rebal", 4
	c, p := setup(t, topic, parts)
	var mu sync.Mutex
	seen := map[string]int{}
	members := map[string]map[int]bool{}
	total := 0
	h := func(name string) queue.Handler {
		return func(ctx context.Context, m *queue.Message) error {
			mu.Lock()
			id := fmt.Sprintf("%d/%d", m.Partition, m.Offset)
			seen[id]++
			total++
			if members[name] == nil {
				members[name] = map[int]bool{}
			}
			members[name][m.Partition] = true
			mu.Unlock()
			return nil
		}
	}
	cfg := kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "g", Topics: []string{topic},
		CommitInterval: 20 * time.Millisecond, SessionTimeout: 3 * time.Second, RebalanceTimeout: 3 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond}
	a, _ := kafkarun.NewConsumer(cfg, h("a"))
	ctxA, cancelA := context.WithCancel(context.Background())
	doneA := make(chan error)
	go func() { doneA <- a.Run(ctxA) }()
	produce(t, p, topic, 400, 40)
	poll.Until(t, 45*time.Second, "400 records seen by a", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 400 })

	b, _ := kafkarun.NewConsumer(cfg, h("b"))
	ctxB, cancelB := context.WithCancel(context.Background())
	doneB := make(chan error)
	go func() { doneB <- b.Run(ctxB) }()
	poll.Until(t, 45*time.Second, "a and b to hold a generation", func() bool { return a.Joined() && b.Joined() })
	produce(t, p, topic, 400, 40)
	poll.Until(t, 45*time.Second, "800 records seen, some by b", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 800 && len(members["b"]) > 0 })

	// SIGTERM-style stop of a: b must take over every partition promptly,
	// well before a session timeout would expire.
	stopped := time.Now()
	cancelA()
	<-doneA
	produce(t, p, topic, 400, 40)
	poll.Until(t, 45*time.Second, "1200 records seen after a stopped", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 1200 })
	if took := time.Since(stopped); took > 2*cfg.SessionTimeout {
		t.Errorf("takeover took %v", took)
	}
	cancelB()
	<-doneB
	mu.Lock()
	defer mu.Unlock()
	dups := total - len(seen)
	if dups != 0 {
		t.Logf("%d redeliveries across the handovers", dups)
	}
	final := committed(t, c.Brokers(), "g", topic, parts)
	sum := int64(0)
	for _, o := range final {
		sum += o
	}
	if sum != 1200 {
		t.Errorf("committed sum %d, want 1200 (%v)", sum, final)
	}
}

// handledTimes records the consumer's Handled calls.
type handledTimes struct {
	kafkarun.NopObserver
	mu    sync.Mutex
	calls map[string][]time.Duration // topic → wait, took, wait, took ...
}

func (h *handledTimes) Handled(topic string, wait, took time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls[topic] = append(h.calls[topic], wait, took)
}

// TestObserverTimesEachRecord: Handled is called once per record that
// reached its outcome, with the wait from the record's timestamp to the
// handler's first call and the handler's time to the outcome, its retries
// included (herald_record_wait_seconds, herald_handle_duration_seconds).
func TestObserverTimesEachRecord(t *testing.T) {
	const topic, records = "timed", 10
	c, p := setup(t, topic, 1)
	obs := &handledTimes{calls: map[string][]time.Duration{}}
	const late = 300 * time.Millisecond // records wait at least this long: the consumer starts after it
	produce(t, p, topic, records, records)
	time.Sleep(late)
	var fails atomic.Int32
	var done atomic.Int32
	h := func(ctx context.Context, m *queue.Message) error {
		if m.Offset == 3 && fails.Add(1) <= 2 {
			return fmt.Errorf("redis is down")
		}
		if m.Offset == 5 {
			time.Sleep(50 * time.Millisecond)
		}
		done.Add(1)
		return nil
	}
	runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "g", Topics: []string{topic}, Observer: obs}, h)
	poll.Until(t, 30*time.Second, "every record handled and observed", func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return done.Load() == records && len(obs.calls[topic]) == 2*records
	})
	time.Sleep(100 * time.Millisecond) // no second call for any record
	obs.mu.Lock()
	defer obs.mu.Unlock()
	got := obs.calls[topic]
	if len(got) != 2*records {
		t.Fatalf("%d Handled calls for %d records", len(got)/2, records)
	}
	slowest := time.Duration(0)
	for i := 0; i < len(got); i += 2 {
		wait, took := got[i], got[i+1]
		if wait < late-time.Millisecond || wait > time.Minute {
			t.Errorf("record waited %v, want at least %v (it was produced before the consumer started)", wait, late)
		}
		slowest = max(slowest, took)
	}
	// Offset 3 failed twice: the consumer's backoff (50 ms, then about
	// 100) is inside its handler time.
	if slowest < 75*time.Millisecond {
		t.Errorf("slowest handler time %v, want the retried record's backoff in it (at least 75ms)", slowest)
	}
}
