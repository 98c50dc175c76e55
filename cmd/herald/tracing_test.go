package main

import (
	"context"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/tracing"
)

// A booking event produced with a W3C traceparent yields one trace: the
// dispatcher's span under the producer's, every channel worker's span under
// the dispatcher's, and every provider call under its worker's — carried
// between roles only by Kafka record headers.
func TestTraceContextCrossesEveryRole(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	rec := tracetest.NewSpanRecorder()
	tr := newTestTracing(rec)
	env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: 2, Log: zap.NewNop(), Tracing: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	startFleet(t, env)
	ctx := context.Background()

	ev := sim.New(sim.Options{Seed: 7, Members: 5, Prefix: "trace"}).Make("gym.booking.confirmed")
	tpl, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := (&dispatcher.Planner{Templates: tpl}).Plan(ev.Value)
	if err != nil || len(ns) < 2 {
		t.Fatalf("plan: %d notifications, %v", len(ns), err)
	}
	const traceID, parentSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	err = env.prod.Publish(ctx, queue.Message{Topic: env.cfg.EventsTopic, Key: ev.Key, Value: ev.Value,
		Headers: []queue.Header{{Key: "traceparent", Value: []byte("00-" + traceID + "-" + parentSpan + "-01")}}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := env.outbox.Wait(wctx, len(ns)); err != nil {
		t.Fatal(err)
	}
	// Spans end just after the outcome is recorded; wait for all of them
	// (the dashboard flow's spans, attendance and live, are in the trace
	// too, so count the ones this test is about).
	want := 1 + 2*len(ns)
	ours := func() int {
		n := 0
		for _, sp := range rec.Ended() {
			if name := sp.Name(); name == "herald dispatch" || strings.HasPrefix(name, "herald deliver ") || strings.HasPrefix(name, "send ") {
				n++
			}
		}
		return n
	}
	for ours() < want {
		select {
		case <-wctx.Done():
			t.Fatalf("%d spans ended, want %d", len(rec.Ended()), want)
		case <-time.After(10 * time.Millisecond):
		}
	}

	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, sp := range rec.Ended() {
		if got := sp.SpanContext().TraceID().String(); got != traceID {
			t.Errorf("span %s in trace %s, want %s", sp.Name(), got, traceID)
		}
		byName[sp.Name()] = append(byName[sp.Name()], sp)
	}
	ds := byName["herald dispatch"]
	if len(ds) != 1 || ds[0].Parent().SpanID().String() != parentSpan {
		t.Fatalf("dispatch spans %d, want one child of the producer's span", len(ds))
	}
	delivers := map[string]bool{}
	for _, n := range ns {
		name := "herald deliver " + string(n.Channel)
		for _, sp := range byName[name] {
			if sp.Parent().SpanID() != ds[0].SpanContext().SpanID() {
				t.Errorf("%s is not a child of the dispatch span", name)
			}
			delivers[sp.SpanContext().SpanID().String()] = true
		}
	}
	sends := 0
	for _, sp := range rec.Ended() {
		if len(sp.Name()) > 5 && sp.Name()[:5] == "send " {
			sends++
			if !delivers[sp.Parent().SpanID().String()] {
				t.Errorf("%s is not a child of a deliver span", sp.Name())
			}
		}
	}
	if sends != len(ns) || len(delivers) != len(ns) {
		t.Errorf("%d deliver and %d send spans for %d notifications", len(delivers), sends, len(ns))
	}
}

func newTestTracing(rec *tracetest.SpanRecorder) *tracing.Tracing {
	return tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
}
