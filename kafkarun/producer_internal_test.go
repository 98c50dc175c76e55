package kafkarun

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/queue"
)

// A call that gives up while it waits for a grouped write is withdrawn:
// handlers that retry through a stalled broker, each time with a new
// deadline, leave no copies behind to be written when it recovers.
func TestPublishWithdrawnWhenCallerGivesUp(t *testing.T) {
	const topic = "stalled"
	c, ctx := oneTopic(t, topic)
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		<-release
		return nil, nil, false
	})
	p := NewProducer(ProducerConfig{Brokers: c.Brokers()})
	defer p.Close()

	// groupWrites calls take every grouped write, one after another (a
	// write starts beside one out only once that one has stalled); they
	// wait on the broker.
	var wg sync.WaitGroup
	for i := range groupWrites {
		wg.Go(func() {
			if err := p.Publish(ctx, queue.Message{Topic: topic, Value: []byte("held")}); err != nil {
				t.Errorf("held publish: %v", err)
			}
		})
		deadline := time.Now().Add(10 * time.Second)
		for {
			p.g.mu.Lock()
			out := p.g.writing == i+1 && len(p.g.pending) == 0
			p.g.mu.Unlock()
			if out {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("grouped write %d never out", i+1)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range 20 {
		short, stop := context.WithTimeout(ctx, 5*time.Millisecond)
		err := p.Publish(short, queue.Message{Topic: topic, Value: []byte("retried")})
		stop()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("publish past its deadline: %v, want the deadline", err)
		}
	}
	p.g.mu.Lock()
	left := len(p.g.pending)
	p.g.mu.Unlock()
	if left != 0 {
		t.Errorf("%d calls still waiting after their callers gave up", left)
	}
	close(release)
	wg.Wait()
}

// oneTopic starts a cluster with topic (one partition) and returns it with
// a context that ends with the test, at most a minute on.
func oneTopic(t *testing.T, topic string) (*kafkatest.Cluster, context.Context) {
	t.Helper()
	c := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if err := EnsureTopics(ctx, c.Brokers(), nil, []TopicSpec{{Name: topic, Partitions: 1, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	return c, ctx
}

// Calls that arrive while a grouped write is out wait for it and go
// together in the next one: with up to four writes started at once, the
// first four calls of every burst were a produce request each.
func TestPublishWaitsForTheWriteOut(t *testing.T) {
	const topic = "one-out"
	p, ctx, requests, release := firstWriteHeld(t, topic)
	p.g.mu.Lock()
	p.g.stallAt = time.Minute // this test is about a write that is not stalled
	p.g.mu.Unlock()

	var wg sync.WaitGroup
	publish := func(v string) {
		wg.Go(func() {
			if err := p.Publish(ctx, queue.Message{Topic: topic, Value: []byte(v)}); err != nil {
				t.Errorf("publish %s: %v", v, err)
			}
		})
	}
	publish("first")
	poll.Until(t, 10*time.Second, "the first write out", func() bool { return requests.Load() == 1 })
	for _, v := range []string{"a", "b", "c", "d", "e"} {
		publish(v)
	}
	poll.Until(t, 10*time.Second, "five calls waiting", func() bool {
		p.g.mu.Lock()
		defer p.g.mu.Unlock()
		return len(p.g.pending) == 5
	})
	p.g.mu.Lock()
	out := p.g.writing
	p.g.mu.Unlock()
	if out != 1 {
		t.Errorf("%d grouped writes out, want 1", out)
	}
	close(release)
	wg.Wait()
	if n := requests.Load(); n != 2 {
		t.Errorf("%d produce requests for six calls, want 2 (the first, then the five that waited)", n)
	}
}

// A write that stays out past the stall does not hold the calls that come
// after it: another write takes them.
func TestPublishPassesAStalledWrite(t *testing.T) {
	const topic = "stalls"
	p, ctx, requests, release := firstWriteHeld(t, topic)

	held := make(chan error, 1)
	go func() { held <- p.Publish(ctx, queue.Message{Topic: topic, Value: []byte("held")}) }()
	poll.Until(t, 10*time.Second, "the first write out", func() bool { return requests.Load() == 1 })
	if err := p.Publish(ctx, queue.Message{Topic: topic, Value: []byte("after")}); err != nil {
		t.Fatalf("publish behind a stalled write: %v", err)
	}
	select {
	case err := <-held:
		t.Fatalf("the held write returned (%v) before it was released", err)
	default:
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatalf("held publish: %v", err)
	}
}

// firstWriteHeld returns a producer on a one-partition topic whose broker
// holds the first produce request until release is closed, and counts the
// requests it gets.
func firstWriteHeld(t *testing.T, topic string) (*Producer, context.Context, *atomic.Int64, chan struct{}) {
	t.Helper()
	c, ctx := oneTopic(t, topic)
	release := make(chan struct{})
	requests := new(atomic.Int64)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if requests.Add(1) == 1 {
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	p := NewProducer(ProducerConfig{Brokers: c.Brokers()})
	t.Cleanup(func() { p.Close() })
	return p, ctx, requests, release
}

// Callers that said they will publish (Expect) are waited for by an idle
// producer: their records go in one produce request, not in one for the
// first caller and another for the rest that came while it was out (a
// dispatcher's events fetched together, each planned on its own).
func TestPublishGathersExpectedCallers(t *testing.T) {
	const topic = "gathered"
	p, ctx, requests := countedProducer(t, topic, time.Minute) // this test is about callers that do come

	const callers = 5
	ctxs := make([]context.Context, callers)
	dones := make([]func(), callers)
	for i := range callers {
		ctxs[i], dones[i] = p.Expect(ctx)
	}
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			defer dones[i]()
			time.Sleep(time.Duration(i) * 2 * time.Millisecond) // each planned at its own pace
			if err := p.Publish(ctxs[i], queue.Message{Topic: topic, Value: []byte{byte(i)}}); err != nil {
				t.Errorf("publish %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := requests.Load(); n != 1 {
		t.Errorf("%d produce requests for %d expected callers, want 1", n, callers)
	}
}

// An expected caller that finishes without publishing releases the calls
// held for it at once; one that neither publishes nor finishes holds them
// no longer than gatherMax; saying done twice counts once.
func TestPublishGatherEnds(t *testing.T) {
	const topic = "gather-ends"
	p, ctx, _ := countedProducer(t, topic, time.Hour)

	_, quiet := p.Expect(ctx)
	mctx, mine := p.Expect(ctx)
	published := make(chan error, 1)
	go func() {
		err := p.Publish(mctx, queue.Message{Topic: topic, Value: []byte("held")})
		mine()
		published <- err
	}()
	poll.Until(t, 10*time.Second, "the call held for the other caller", func() bool {
		p.g.mu.Lock()
		defer p.g.mu.Unlock()
		return len(p.g.pending) == 1 && p.g.gathering
	})
	select {
	case err := <-published:
		t.Fatalf("published (%v) while an expected caller was out", err)
	case <-time.After(20 * time.Millisecond):
	}
	quiet() // finished without publishing
	quiet() // and said so twice
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	p.g.mu.Lock()
	expected := p.g.expected
	p.g.mu.Unlock()
	if expected != 0 {
		t.Fatalf("%d callers expected once both said done (one twice), want 0", expected)
	}

	p.g.mu.Lock()
	p.g.gatherMax = 50 * time.Millisecond
	p.g.mu.Unlock()
	_, stuck := p.Expect(ctx) // never publishes, never finishes
	defer stuck()
	mctx, mine = p.Expect(ctx)
	defer mine()
	if err := p.Publish(mctx, queue.Message{Topic: topic, Value: []byte("not held for ever")}); err != nil {
		t.Fatal(err)
	}
}

// A call from a caller that did not say Expect (in herald run the
// dispatcher shares its producer with the scheduler and the channel
// workers' retries) is not held for the dispatcher's handlers that are
// still planning; and it does not end a hold an expected caller's call
// opened, which takes the expected callers' later calls in its request.
func TestPublishGatherIsTheExpectedCallersOnly(t *testing.T) {
	const topic = "gather-others"
	p, ctx, requests := countedProducer(t, topic, time.Hour)

	ctx1, done1 := p.Expect(ctx)
	ctx2, done2 := p.Expect(ctx)
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Publish(short, queue.Message{Topic: topic, Value: []byte("the scheduler's")}); err != nil {
		t.Fatalf("a caller that did not say Expect: %v (held for the ones that did)", err)
	}
	requests.Store(0)

	var wg sync.WaitGroup
	publish := func(ctx context.Context, value string, done func()) {
		wg.Go(func() {
			defer done()
			if err := p.Publish(ctx, queue.Message{Topic: topic, Value: []byte(value)}); err != nil {
				t.Errorf("publish %s: %v", value, err)
			}
		})
	}
	held := func(n int) bool {
		p.g.mu.Lock()
		defer p.g.mu.Unlock()
		return p.g.gathering && len(p.g.pending) == n
	}
	publish(ctx1, "first event", done1)
	poll.Until(t, 10*time.Second, "the first event's call held", func() bool { return held(1) })
	publish(ctx, "a retry's", func() {})
	poll.Until(t, 10*time.Second, "the retry's call joining the hold", func() bool { return held(2) })
	publish(ctx2, "second event", done2)
	wg.Wait()
	if n := requests.Load(); n != 1 {
		t.Errorf("%d produce requests for two events' calls and a retry's, want 1", n)
	}
}

// Close writes the calls held for expected callers rather than leave them
// waiting.
func TestCloseWritesGatheredCalls(t *testing.T) {
	const topic = "gather-close"
	c, ctx := oneTopic(t, topic)
	p := NewProducer(ProducerConfig{Brokers: c.Brokers()})
	p.g.mu.Lock()
	p.g.gatherMax = time.Hour
	p.g.mu.Unlock()
	_, quiet := p.Expect(ctx) // never publishes
	defer quiet()
	mctx, mine := p.Expect(ctx)
	published := make(chan error, 1)
	go func() {
		defer mine()
		published <- p.Publish(mctx, queue.Message{Topic: topic, Value: []byte("held")})
	}()
	poll.Until(t, 10*time.Second, "the call held", func() bool {
		p.g.mu.Lock()
		defer p.g.mu.Unlock()
		return len(p.g.pending) == 1
	})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-published; err != nil {
		t.Fatalf("held call at Close: %v", err)
	}
}

// countedProducer returns a producer that holds calls for expected callers
// up to gather, on a one-partition topic, and the count of produce
// requests its broker got.
func countedProducer(t *testing.T, topic string, gather time.Duration) (*Producer, context.Context, *atomic.Int64) {
	t.Helper()
	c, ctx := oneTopic(t, topic)
	requests := new(atomic.Int64)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		requests.Add(1)
		return nil, nil, false
	})
	p := NewProducer(ProducerConfig{Brokers: c.Brokers()})
	t.Cleanup(func() { p.Close() })
	p.g.mu.Lock()
	p.g.gatherMax = gather
	p.g.mu.Unlock()
	return p, ctx, requests
}
