package kafkarun_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// supersededCount counts the consumer's Superseded calls.
type supersededCount struct {
	kafkarun.NopObserver
	n atomic.Int64
}

func (s *supersededCount) Superseded(topic string, n int) {
	if topic != "live" || n <= 0 {
		panic("Superseded(" + topic + ", " + strconv.Itoa(n) + ")")
	}
	s.n.Add(int64(n))
}

// TestSupersededRecordsAreCommittedUnhandled: with Conflate set, a
// backlog of many versions per key is handled as few records, every key
// ends at its last version, the records passed over are counted and
// committed, and a consumer of the group started afterwards finds nothing.
func TestSupersededRecordsAreCommittedUnhandled(t *testing.T) {
	const topic, keys, versions, parts = "live", 6, 100, 2
	const n = keys * versions
	c, p := setup(t, topic, parts)
	msgs := make([]queue.Message, n)
	for i := range msgs {
		k := "k" + strconv.Itoa(i%keys)
		msgs[i] = queue.Message{Topic: topic, Key: []byte(k), Value: []byte(k + ":" + strconv.Itoa(i/keys+1))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	version := func(m *queue.Message) int {
		_, v, _ := strings.Cut(string(m.Value), ":")
		n, _ := strconv.Atoi(v)
		return n
	}
	var (
		mu      sync.Mutex
		last    = map[string]int{}
		handled atomic.Int64
	)
	h := func(ctx context.Context, m *queue.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if v := version(m); v <= last[string(m.Key)] {
			t.Errorf("key %s: version %d after %d", m.Key, v, last[string(m.Key)])
		}
		last[string(m.Key)] = version(m)
		handled.Add(1)
		return nil
	}
	obs := &supersededCount{}
	run := func(group string, h queue.Handler) (stop func()) {
		cons, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{
			Brokers: c.Brokers(), GroupID: group, Topics: []string{topic}, MaxInFlight: 4,
			CommitInterval: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 5 * time.Second,
			Observer: obs, Conflate: func(m *queue.Message) (string, int64, bool) { return "", int64(version(m)), true },
		}, h)
		if err != nil {
			t.Fatal(err)
		}
		rctx, stopRun := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- cons.Run(rctx) }()
		return func() {
			stopRun()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	stop := run("g", h)
	poll.Until(t, 30*time.Second, "every record handled or superseded", func() bool { return handled.Load()+obs.n.Load() == n })
	poll.Until(t, 10*time.Second, "the whole topic committed", func() bool {
		total := int64(0)
		for _, off := range committed(t, c.Brokers(), "g", topic, parts) {
			total += off
		}
		return total == n
	})
	stop()
	if handled.Load() >= n/2 {
		t.Errorf("handled %d of %d records of %d keys fetched as a backlog", handled.Load(), n, keys)
	}
	for i := range keys {
		if k := "k" + strconv.Itoa(i); last[k] != versions {
			t.Errorf("key %s ended at version %d, want %d", k, last[k], versions)
		}
	}

	// A consumer of the group started now gets only what comes next.
	var again []string
	got := make(chan struct{}, 1)
	stop = run("g", func(_ context.Context, m *queue.Message) error {
		mu.Lock()
		again = append(again, string(m.Value))
		mu.Unlock()
		select {
		case got <- struct{}{}:
		default:
		}
		return nil
	})
	defer stop()
	if err := p.Publish(ctx, queue.Message{Topic: topic, Key: []byte("k0"), Value: []byte("k0:101")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("the record produced after the restart never arrived")
	}
	time.Sleep(200 * time.Millisecond) // anything redelivered with it would be handled by now
	mu.Lock()
	defer mu.Unlock()
	if len(again) != 1 {
		t.Errorf("after the restart the group handled %q, want only the new record", again)
	}
}
