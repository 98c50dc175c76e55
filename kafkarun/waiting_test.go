package kafkarun_test

import (
	"bufio"
	"bytes"
	"context"
	"runtime/pprof"
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

// goroutinesIn counts the goroutines with fn on their stacks.
func goroutinesIn(t *testing.T, fn string) int {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		t.Fatal(err)
	}
	total, n := 0, 0
	sc := bufio.NewScanner(&b)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if count, _, ok := strings.Cut(line, " @ "); ok {
			n, _ = strconv.Atoi(count) // the next stack's goroutines
			continue
		}
		if strings.Contains(line, fn) {
			total += n
			n = 0 // once per stack
		}
	}
	return total
}

// TestMessagesWaitingForAHandlerHoldNoGoroutine: with every handler busy,
// the fetched messages that wait for one wait in their partitions' loops,
// not each on a goroutine of its own that the collector shrinks while it
// waits and the handler grows again (issue 14: several hundred of them in
// the pipeline bench's process). Only the running handlers have a
// goroutine.
func TestMessagesWaitingForAHandlerHoldNoGoroutine(t *testing.T) {
	const topic, n, maxInFlight = "waits", 100, 4
	c, p := setup(t, topic, 2)
	produce(t, p, topic, n, n) // every message its own key: none waits behind another

	var running, handled atomic.Int32
	release := make(chan struct{})
	h := func(ctx context.Context, m *queue.Message) error {
		running.Add(1)
		<-release
		handled.Add(1)
		return nil
	}
	runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "g", Topics: []string{topic}, MaxInFlight: maxInFlight}, h)

	poll.Until(t, 20*time.Second, "every handler running", func() bool { return running.Load() == maxInFlight })
	// As many messages again may be fetched and waiting: give them time
	// to be taken by their partitions' loops and handed on, if they were.
	time.Sleep(300 * time.Millisecond)
	if got := goroutinesIn(t, "kafkarun.(*partition).run"); got != maxInFlight {
		t.Errorf("%d goroutines hold a message; want %d, the running handlers", got, maxInFlight)
	}
	close(release)
	poll.Until(t, 30*time.Second, "every message handled", func() bool { return handled.Load() == n })
}

// TestKeysOfOneHashKeepTheirOrder: a partition queues messages behind a
// busy key by the key's 64-bit hash. Keys that share one run one at a
// time, in offset order, as one key would: every message is handled once
// and each key's order holds. Here every key hashes alike, so a
// partition runs one message at a time.
func TestKeysOfOneHashKeepTheirOrder(t *testing.T) {
	const topic, n, keys, parts = "collide", 300, 20, 2
	c, p := setup(t, topic, parts)
	produce(t, p, topic, n, keys)

	var (
		mu      sync.Mutex
		last    = map[string]int64{} // partition/key → last offset handled
		active  = map[int]int{}      // partition → handlers running
		most    int
		handled int
	)
	done := make(chan struct{})
	h := func(ctx context.Context, m *queue.Message) error {
		k := strconv.Itoa(m.Partition) + "/" + string(m.Key)
		mu.Lock()
		if off, ok := last[k]; ok && off >= m.Offset {
			t.Errorf("key %s: offset %d after %d", k, m.Offset, off)
		}
		last[k] = m.Offset
		active[m.Partition]++
		most = max(most, active[m.Partition])
		mu.Unlock()
		time.Sleep(100 * time.Microsecond) // a provider's wait, for others to overlap with
		mu.Lock()
		active[m.Partition]--
		if handled++; handled == n {
			close(done)
		}
		mu.Unlock()
		return nil
	}
	cons, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "g", Topics: []string{topic}, MaxInFlight: 16}, h)
	if err != nil {
		t.Fatal(err)
	}
	kafkarun.SetKeyHash(cons, func([]byte) uint64 { return 7 }) // before Run, which reads it
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = cons.Run(ctx) }()
	defer func() { cancel(); <-stopped }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		t.Errorf("handled %d of %d", handled, n)
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 1 {
		t.Errorf("%d messages of one partition ran at once; keys of one hash run one at a time", most)
	}
}
