package kafkarun_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// chanGate blocks until open is closed and counts the callers it held.
type chanGate struct {
	open    chan struct{}
	waiting atomic.Int32
}

func (g *chanGate) Wait(ctx context.Context) error {
	select {
	case <-g.open:
		return nil
	default:
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestGatePausesConsumption: while the gate is shut no record reaches the
// handler and nothing is committed; once it opens every record is handled
// once. Shutting down while records wait at the gate returns promptly.
func TestGatePausesConsumption(t *testing.T) {
	const topic, n = "gated", 30
	c, p := setup(t, topic, 1)
	produce(t, p, topic, n, n)

	g := &chanGate{open: make(chan struct{})}
	var handled atomic.Int32
	all := make(chan struct{})
	h := func(ctx context.Context, m *queue.Message) error {
		if handled.Add(1) == n {
			close(all)
		}
		return nil
	}
	cons, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{
		Brokers: c.Brokers(), GroupID: "g", Topics: []string{topic},
		CommitInterval: 20 * time.Millisecond, Gate: g,
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error)
	go func() { runDone <- cons.Run(ctx) }()

	// Wait until every fetched record is held at the gate.
	deadline := time.Now().Add(20 * time.Second)
	for g.waiting.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d records reached the gate", g.waiting.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h := handled.Load(); h != 0 {
		t.Fatalf("%d records handled while the gate was shut", h)
	}
	if off := committed(t, c.Brokers(), "g", topic, 1)[0]; off > 0 {
		t.Fatalf("committed %d while nothing was handled", off)
	}
	close(g.open)
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatalf("only %d of %d handled after the gate opened", handled.Load(), n)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if h := handled.Load(); h != n {
		t.Errorf("handled %d, want %d", h, n)
	}
}

// TestGateHeldAtShutdown: records waiting at a shut gate do not hold up a
// shutdown, and stay uncommitted.
func TestGateHeldAtShutdown(t *testing.T) {
	const topic, n = "held", 5
	c, p := setup(t, topic, 1)
	produce(t, p, topic, n, n)
	g := &chanGate{open: make(chan struct{})}
	cons, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{
		Brokers: c.Brokers(), GroupID: "g", Topics: []string{topic}, Gate: g,
		DrainTimeout: time.Minute,
	}, func(context.Context, *queue.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error)
	go func() { runDone <- cons.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for g.waiting.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d records reached the gate", g.waiting.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-runDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown waited on the shut gate")
	}
	if off := committed(t, c.Brokers(), "g", topic, 1)[0]; off > 0 {
		t.Errorf("committed %d of records that never ran", off)
	}
}

// passing is a gate that is always passing and must never be waited on.
type passing struct{ waits atomic.Int32 }

func (p *passing) Passing() bool                  { return true }
func (p *passing) Wait(ctx context.Context) error { p.waits.Add(1); return nil }

// TestPassingGateSkipsWait: a gate that says it is passing costs no wait.
func TestPassingGateSkipsWait(t *testing.T) {
	const topic, n = "passing", 10
	c, p := setup(t, topic, 1)
	produce(t, p, topic, n, n)
	g := &passing{}
	var handled atomic.Int32
	all := make(chan struct{})
	cons, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "g", Topics: []string{topic}, Gate: g},
		func(context.Context, *queue.Message) error {
			if handled.Add(1) == n {
				close(all)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- cons.Run(ctx) }()
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatal("not all handled")
	}
	cancel()
	<-done
	if g.waits.Load() != 0 {
		t.Errorf("Wait called %d times on a passing gate", g.waits.Load())
	}
}
