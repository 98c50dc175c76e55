package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/pipeline"
	"github.com/gymhq/herald/queue"
)

// fakeClock is a settable clock for liveness.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// handlerCall is one call of a test handler that runs until released.
type handlerCall struct {
	started chan struct{}
	release chan struct{}
	done    chan struct{}
}

// startCall runs h (a blockingHandler wrapped by liveness) in the
// background and returns once the call has started; it runs until finished.
func startCall(h queue.Handler) *handlerCall {
	c := &handlerCall{started: make(chan struct{}), release: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		h(context.WithValue(context.Background(), callKey{}, c), &queue.Message{})
	}()
	<-c.started
	return c
}

type callKey struct{}

// blockingHandler blocks each call until released, inside queue.Waiting
// when waiting is true.
func blockingHandler(waiting bool) queue.Handler {
	return func(ctx context.Context, m *queue.Message) error {
		c := ctx.Value(callKey{}).(*handlerCall)
		if waiting {
			defer queue.Waiting(ctx)()
		}
		close(c.started)
		<-c.release
		return nil
	}
}

func (c *handlerCall) finish() {
	close(c.release)
	<-c.done
}

// TestHealthz: /healthz passes when the consume loop is idle by choice or
// busy and finishing work, and fails only when work is pending and nothing
// finishes for the stall window.
func TestHealthz(t *testing.T) {
	const window = time.Minute
	clock := &fakeClock{t: time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)}
	f := &fleet{metrics: obs.NewMetrics(), log: zap.NewNop()}
	f.live.Now, f.live.Window = clock.now, window
	srv, err := serveHTTP("127.0.0.1:0", f, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := "http://" + srv.Addr + "/healthz"
	expect := func(state string, code int, body string) {
		t.Helper()
		got, b := get(t, url)
		if got != code || !strings.Contains(b, body) {
			t.Fatalf("%s: /healthz %d %q, want %d containing %q", state, got, b, code, body)
		}
	}

	stuck := f.live.Track("herald-email", []string{"herald.email.v1"}, blockingHandler(false))
	waits := f.live.Track("herald-sms", []string{"herald.sms.v1"}, blockingHandler(true))
	emailObs := f.live.Observe("herald-email", pipeline.NewObserver(f.metrics, "herald-email", []string{"herald.email.v1"}, nil))
	emailObs.Assigned("herald.email.v1", 0)
	lag := func(n int64) {
		f.live.ReportLag(kafkarun.PartitionLag{Group: "herald-email", Topic: "herald.email.v1", Partition: 0, Lag: n})
	}
	expect("started", 200, "ok")

	// Idle by choice: partitions held, nothing waiting, for an hour.
	lag(0)
	clock.advance(time.Hour)
	expect("idle for an hour", 200, "ok")

	// Busy after a long idle: the stall clock starts when work appears.
	c := startCall(stuck)
	clock.advance(window / 2)
	expect("busy, within the window", 200, "ok")
	// Busy and finishing: each finished call is progress.
	for range 5 {
		c.finish()
		c = startCall(stuck)
		clock.advance(window / 2)
		expect("busy and finishing calls", 200, "ok")
	}

	// Wedged: a call runs past the window without finishing.
	clock.advance(window)
	expect("wedged handler", 503, "herald-email: no progress")
	c.finish()
	expect("wedged handler released", 200, "ok")

	// Waiting by design (a retry's not-before time) is not a stall.
	w := startCall(waits)
	clock.advance(10 * window)
	expect("waiting by design", 200, "ok")
	w.finish()

	// Paused by design: records wait on a held partition while the
	// channel's circuit breaker holds them at the gate, for ten windows.
	closed := &testGate{open: make(chan struct{})}
	g := f.live.Gate("herald-email", closed)
	lag(40)
	gateDone := make(chan error, 1)
	go func() { gateDone <- g.Wait(context.Background()) }()
	for !f.live.Paused("herald-email") {
		time.Sleep(time.Millisecond)
	}
	clock.advance(10 * window)
	expect("paused at the breaker", 200, "ok")
	close(closed.open) // the provider is back
	if err := <-gateDone; err != nil {
		t.Fatal(err)
	}
	expect("breaker closed", 200, "ok")
	if f.live.Gate("herald-email", nil) != nil {
		t.Error("a nil gate was wrapped")
	}

	// A wedged fetch loop: records wait on a held partition and no call
	// runs or finishes.
	lag(40)
	clock.advance(window / 2)
	expect("records just arrived", 200, "ok")
	clock.advance(window)
	expect("wedged fetch", 503, "herald-email: no progress")
	// Records on a partition this process no longer holds are another
	// member's business.
	emailObs.Revoked("herald.email.v1", 0)
	expect("partition revoked", 200, "ok")

	// Records left on a topic that was deleted: the lag poll forgets the
	// partition (kafkarun.LagConfig.Forget), and they stop counting.
	emailObs.Assigned("herald.email.v1", 0)
	lag(40)
	clock.advance(2 * window)
	expect("lag on a partition held", 503, "herald-email: no progress")
	f.live.ForgetLag(kafkarun.PartitionLag{Group: "herald-email", Topic: "herald.email.v1", Partition: 0})
	expect("its topic deleted", 200, "ok")
}

// TestReadyz: ready only when every consumer has joined its group and Redis
// answers.
func TestReadyz(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Kafka and Redis")
	}
	redis := redistest.Start(t)
	env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: 1, RedisURL: redis.URL(), Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	addr := mustServe(t, env)
	url := "http://" + addr + "/readyz"
	expect := func(state string, code int, body string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, b := get(t, url)
			if got == code && strings.Contains(b, body) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz %d %q, want %d containing %q", state, got, b, code, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	expect("before start", 503, "consumers not started")

	// A consumer that exists but has not joined its group.
	c, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{Brokers: env.brokers(), GroupID: "never-joins", Topics: []string{"t"}},
		func(context.Context, *queue.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	env.fleet.mu.Lock()
	env.fleet.consumers = append(env.fleet.consumers, c)
	env.fleet.mu.Unlock()
	expect("not joined", 503, "never-joins: no consumer-group generation")
	env.fleet.mu.Lock()
	env.fleet.consumers = nil
	env.fleet.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.fleet.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	expect("joined, Redis up", 200, "ready")

	redis.Stop()
	expect("Redis down", 503, "idempotency store: redis "+redis.URL()+" (HERALD_REDIS_URL): ")
	if err := redis.Restart(); err != nil {
		t.Fatal(err)
	}
	expect("Redis back", 200, "ready")
}

// testGate blocks Wait until open is closed.
type testGate struct{ open chan struct{} }

func (g *testGate) Wait(ctx context.Context) error {
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
