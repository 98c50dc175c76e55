package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gymhq/herald/channels"
	_ "github.com/gymhq/herald/channels/all"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/live"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/pipeline"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
	"github.com/gymhq/herald/tracing"
)

type publisher struct {
	mu   sync.Mutex
	msgs []queue.Message
}

func (p *publisher) Publish(_ context.Context, msgs ...queue.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, msgs...)
	return nil
}

// provider answers 503 until healed.
type provider struct {
	mu     sync.Mutex
	down   bool
	calls  int
	traced bool // a send span was open around the call
}

func (p *provider) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.down {
		return channels.Receipt{}, failure.New(failure.Retryable, failure.ReasonUnavailable, errors.New("503"))
	}
	return channels.Receipt{ProviderMessageID: "pm-" + m.NotificationID}, nil
}

func (p *provider) Close() error { return nil }

// watch records the order liveness sees.
type watch struct {
	mu     sync.Mutex
	events []string
}

func (w *watch) Track(group string, _ []string, h queue.Handler) queue.Handler {
	return func(ctx context.Context, m *queue.Message) error {
		w.mu.Lock()
		w.events = append(w.events, "track "+group)
		w.mu.Unlock()
		return h(ctx, m)
	}
}

func (w *watch) Gate(group string, g kafkarun.Gate) kafkarun.Gate { return g }

// TestDeliverOrder builds a channel stage as herald run, dev and bench do
// and checks the order of its parts from outside: liveness sees every
// record, each record gets a deliver span with a send span inside it, the
// breaker opens after the configured failures and its gate then holds
// the consumer, and a send after recovery goes through.
func TestDeliverOrder(t *testing.T) {
	tpl, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	cfg := config.Defaults()
	cfg.BreakerFailures, cfg.BreakerOpenFor = 2, time.Second
	pub := &publisher{}
	live := &watch{}
	c := pipeline.Common{Config: cfg, Publisher: pub, Tracing: tracing.New(trace.NewTracerProvider(trace.WithSpanProcessor(spans))),
		Metrics: obs.NewMetrics(), Liveness: live}
	prov := &provider{down: true}
	guard, err := pipeline.NewBreaker(c, notification.SMS, prov)
	if err != nil {
		t.Fatal(err)
	}
	st, err := pipeline.Deliver(c, pipeline.Channel{Name: notification.SMS, Guard: guard, Renderer: tpl,
		Store: dedupe.NewMemory(dedupe.Options{}), Owner: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Group != "herald-sms" || len(st.Topics) != 2 {
		t.Fatalf("stage %s %v", st.Group, st.Topics)
	}

	n := &notification.Notification{EventID: "e1", EventType: "gym.class.reminder", Template: "gym.class.reminder",
		Channel: notification.SMS, Locale: "en", RecipientID: "m1", To: "+447700900123",
		Data:      notification.DataOf(map[string]string{"recipient_name": "Ann", "class_name": "Spin", "class_start_time": "07:00", "class_date": "Mon"}),
		CreatedAt: time.Now()}
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	value, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	rec := &queue.Message{Topic: "herald.sms.v1", Key: []byte("m1"), Value: value}

	// Down: the worker tries its quick attempts; the breaker opens after
	// two failures and the rest are refused without a call.
	_ = st.Handler(context.Background(), rec)
	if prov.calls != 2 {
		t.Errorf("provider called %d times while down, want 2 (the breaker's failures)", prov.calls)
	}
	if p, ok := st.Gate.(interface{ Passing() bool }); !ok || p.Passing() {
		t.Error("gate passing with the breaker open")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	prov.mu.Lock()
	prov.down = false
	prov.mu.Unlock()
	if err := st.Gate.Wait(ctx); err != nil {
		t.Fatalf("gate did not reopen for the probe: %v", err)
	}
	n.EventID = "e2"
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	if value, err = notification.Encode(n); err != nil {
		t.Fatal(err)
	}
	if err := st.Handler(context.Background(), &queue.Message{Topic: "herald.sms.v1", Key: []byte("m1"), Value: value}); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if len(live.events) != 2 {
		t.Errorf("liveness saw %v, want both records", live.events)
	}
	var deliver, send int
	for _, s := range spans.Ended() {
		switch s.Name() {
		case "herald deliver sms":
			deliver++
		case "send sms":
			send++
			if !s.Parent().IsValid() {
				t.Error("send span without a parent deliver span")
			}
		}
	}
	if deliver != 2 || send < 1 {
		t.Errorf("%d deliver and %d send spans", deliver, send)
	}
}

// TestFanoutConflatesFromTheStart: the dashboards' stage conflates, and
// its herald_superseded_total series is there at 0 before any burst, so
// that rate() and increase() see the first one.
func TestFanoutConflatesFromTheStart(t *testing.T) {
	m := obs.NewMetrics()
	st := pipeline.Fanout(pipeline.Common{Config: config.Defaults(), Metrics: m, Tracing: tracing.New(trace.NewTracerProvider()),
		Liveness: &kafkarun.Liveness{}}, &live.Fanout{}, nil)
	if st.Conflate == nil {
		t.Fatal("the dashboards' stage does not conflate")
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "herald_superseded_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["group"] == topics.GroupLive && labels["topic"] == topics.Live && s.GetCounter().GetValue() == 0 {
				return
			}
		}
	}
	t.Fatal("no herald_superseded_total series for the dashboards' group")
}

// countWaits is a tracker that counts the waits it hears of.
type countWaits struct{ begun, ended int }

func (c *countWaits) WaitBegin() { c.begun++ }
func (c *countWaits) WaitEnd()   { c.ended++ }

// TestPriorityYieldsOnlyToWorkingRecords: the low flow's gate is closed
// while a high record is being worked on and open while it waits by
// design (queue.Waiting), as a notification waiting out another worker's
// lease does; the tracker already in the record's context (liveness's)
// still hears of the wait.
func TestPriorityYieldsOnlyToWorkingRecords(t *testing.T) {
	prio := &pipeline.Priority{}
	gate, ok := prio.Low().(interface{ Passing() bool })
	if !ok {
		t.Fatal("the low gate cannot say whether it passes")
	}
	var during []bool
	h := prio.High(func(ctx context.Context, _ *queue.Message) error {
		during = append(during, gate.Passing())
		done := queue.Waiting(ctx)
		during = append(during, gate.Passing())
		done()
		during = append(during, gate.Passing())
		return nil
	})
	outer := &countWaits{}
	if err := h(queue.WithWaitTracker(context.Background(), outer), &queue.Message{}); err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true, false}; fmt.Sprint(during) != fmt.Sprint(want) {
		t.Errorf("the low gate passing before, during and after the high record's wait: %v, want %v", during, want)
	}
	if !gate.Passing() {
		t.Error("the low gate is closed after the high record ended")
	}
	if outer.begun != 1 || outer.ended != 1 {
		t.Errorf("the record's own tracker heard %d waits begin and %d end, want 1 and 1", outer.begun, outer.ended)
	}
}

// TestPriorityCountsEachRecordOnce: however a high record's waits go
// (overlapping, left open, ended twice, begun on its context after its
// handler returned), it takes no other record off the busy count and
// leaves nothing on it (a review's cases).
func TestPriorityCountsEachRecordOnce(t *testing.T) {
	prio := &pipeline.Priority{}
	gate := prio.Low().(interface{ Passing() bool })
	var kept context.Context
	working := make(chan struct{})
	release := make(chan struct{})
	done := make(chan struct{})
	h := prio.High(func(ctx context.Context, m *queue.Message) error {
		if m.Offset == 1 { // the record that works while the other's waits go wrong
			close(working)
			<-release
			return nil
		}
		a, b := queue.Waiting(ctx), queue.Waiting(ctx) // overlapping
		a()
		a() // ended twice
		b()
		queue.Waiting(ctx) // left open
		kept = ctx
		return nil
	})
	go func() { _ = h(context.Background(), &queue.Message{Offset: 1}); close(done) }()
	<-working
	if err := h(context.Background(), &queue.Message{Offset: 0}); err != nil {
		t.Fatal(err)
	}
	queue.Waiting(kept)() // after its handler returned
	queue.Waiting(kept)
	if gate.Passing() {
		t.Error("the low gate passes while a high record works")
	}
	close(release)
	<-done
	if !gate.Passing() {
		t.Error("the low gate is closed after every high record ended")
	}
}
