package worker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/logtest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
	"github.com/gymhq/herald/worker"
)

// sender answers from a script of errors, then succeeds.
type sender struct {
	mu     sync.Mutex
	script []error
	calls  int
}

func (s *sender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.script) > 0 {
		err := s.script[0]
		s.script = s.script[1:]
		if err != nil {
			return channels.Receipt{}, err
		}
	}
	return channels.Receipt{ProviderMessageID: "prov-" + m.NotificationID}, nil
}
func (s *sender) Close() error { return nil }

type renderer struct{ err error }

func (r renderer) Render(n *notification.Notification) (*channels.Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	return &channels.Message{NotificationID: n.ID, Channel: n.Channel, To: n.To, Text: "hi"}, nil
}

// publisher records what was published; it can be told to fail.
type publisher struct {
	mu   sync.Mutex
	msgs []queue.Message
	fail error
}

func (p *publisher) Publish(ctx context.Context, msgs ...queue.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.msgs = append(p.msgs, msgs...)
	return nil
}

func (p *publisher) on(topic string) []queue.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []queue.Message
	for _, m := range p.msgs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// brokenStore fails every call, as Redis does when it is down.
type brokenStore struct{ dedupe.Store }

func (brokenStore) Claim(context.Context, string, string, time.Duration) (dedupe.Claim, error) {
	return dedupe.Claim{}, failure.Retry(failure.ReasonNetwork, errors.New("connection refused"))
}

func record(t *testing.T, n *notification.Notification) *queue.Message {
	t.Helper()
	b, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	return &queue.Message{Topic: topics.Channel(n.Channel), Partition: 1, Offset: 7, Key: []byte(n.RecipientID), Value: b}
}

func note(attempt int) *notification.Notification {
	n := &notification.Notification{EventID: "evt_1", EventType: "gym.class.reminder", Template: "gym.class.reminder",
		Channel: notification.SMS, Locale: "en", RecipientID: "mem_1", To: "+447700900123", Attempt: attempt, CreatedAt: time.Now()}
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	return n
}

func newWorker(t *testing.T, s channels.Sender, r worker.Renderer, store dedupe.Store, p queue.Publisher, owner string) *worker.Worker {
	t.Helper()
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: s, Renderer: r, Store: store, Publisher: p,
		Owner: owner, Lease: 2 * time.Second, SendTimeout: time.Second, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestHandleOutcomes(t *testing.T) {
	transient := failure.Retry(failure.ReasonUnavailable, errors.New("503"))
	tests := []struct {
		name      string
		script    []error
		render    error
		attempt   int
		value     []byte // overrides the encoded notification
		sends     int
		dlq       int
		retry     int
		state     dedupe.State
		dlqReason string
	}{
		{name: "sent", sends: 1, state: dedupe.StateSent},
		{name: "transient then sent", script: []error{transient, transient}, sends: 3, state: dedupe.StateSent},
		{name: "permanent", script: []error{failure.Perm(failure.ReasonInvalidAddress, errors.New("21211"))}, sends: 1, dlq: 1, state: dedupe.StateFailed, dlqReason: "invalid_address"},
		{name: "transient exhausts quick attempts", script: []error{transient, transient, transient}, sends: 3, retry: 1, state: dedupe.StateNone},
		{name: "retry ladder exhausted", script: []error{transient, transient, transient}, attempt: 2, sends: 3, dlq: 1, state: dedupe.StateFailed, dlqReason: "exhausted"},
		{name: "render error", render: failure.Perm(failure.ReasonRender, errors.New("missing key")), dlq: 1, state: dedupe.StateFailed, dlqReason: "render"},
		{name: "over budget keeps its reason", render: failure.Perm(failure.ReasonOverBudget, errors.New("3 segments")), dlq: 1, state: dedupe.StateFailed, dlqReason: "over_budget"},
		{name: "a push payload over the limit keeps its reason", render: failure.Perm(failure.ReasonTooLarge, errors.New("5000 bytes")), dlq: 1, state: dedupe.StateFailed, dlqReason: "too_large"},
		{name: "a render error not marked permanent is made one", render: errors.New("template exploded"), dlq: 1, state: dedupe.StateFailed, dlqReason: "render"},
		{name: "poison", value: []byte("{nope"), dlq: 1, dlqReason: "decode"},
		{name: "wrong channel", value: func() []byte {
			n := note(0)
			n.Channel = notification.Push
			n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
			b, _ := notification.Encode(n)
			return b
		}(), dlq: 1, dlqReason: "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := dedupe.NewMemory(dedupe.Options{})
			s := &sender{script: tt.script}
			p := &publisher{}
			w := newWorker(t, s, renderer{err: tt.render}, store, p, "w1")
			n := note(tt.attempt)
			m := record(t, n)
			if tt.value != nil {
				m.Value = tt.value
			}
			if err := w.Handle(context.Background(), m); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if s.calls != tt.sends {
				t.Errorf("sends = %d, want %d", s.calls, tt.sends)
			}
			if got := len(p.on(topics.DLQ)); got != tt.dlq {
				t.Errorf("DLQ records = %d, want %d", got, tt.dlq)
			}
			if got := len(p.on(topics.Retry(notification.SMS))); got != tt.retry {
				t.Errorf("retry records = %d, want %d", got, tt.retry)
			}
			if tt.dlqReason != "" {
				d := p.on(topics.DLQ)[0]
				if r := string(d.Header(dlq.HeaderReason)); r != tt.dlqReason {
					t.Errorf("DLQ reason %q, want %q", r, tt.dlqReason)
				}
				if string(d.Header(dlq.HeaderSourceOffset)) != "7" || string(d.Header(dlq.HeaderSourceTopic)) == "" {
					t.Errorf("DLQ record lacks its source")
				}
			}
			if tt.value == nil {
				c, _ := store.Get(context.Background(), n.ID)
				if c.State != tt.state {
					t.Errorf("key state %q, want %q", c.State, tt.state)
				}
			}
			if tt.retry > 0 {
				r, err := notification.Decode(p.on(topics.Retry(notification.SMS))[0].Value)
				if err != nil {
					t.Fatal(err)
				}
				if r.ID != n.ID || r.Attempt != tt.attempt+1 || !r.NotBefore.After(time.Now()) || r.FirstFailedAt.IsZero() {
					t.Errorf("retry record: id %s attempt %d not_before %v", r.ID, r.Attempt, r.NotBefore)
				}
			}
		})
	}
}

func TestDuplicateIsNotResent(t *testing.T) {
	store := dedupe.NewMemory(dedupe.Options{})
	s := &sender{}
	p := &publisher{}
	w := newWorker(t, s, renderer{}, store, p, "w1")
	m := record(t, note(0))
	for range 3 {
		if err := w.Handle(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	// Another process sees the same notification (a rebalance redelivery).
	w2 := newWorker(t, s, renderer{}, store, p, "w2")
	if err := w2.Handle(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if s.calls != 1 {
		t.Fatalf("sent %d times, want 1", s.calls)
	}
}

// TestInFlightElsewhereWaits: a duplicate that another worker holds is not
// dropped; when that worker gives the claim back (it failed), this one sends.
func TestInFlightElsewhereWaits(t *testing.T) {
	store := dedupe.NewMemory(dedupe.Options{})
	n := note(0)
	c, err := store.Claim(context.Background(), n.ID, "other", time.Minute)
	if err != nil || !c.Acquired {
		t.Fatalf("claim: %v %+v", err, c)
	}
	s := &sender{}
	w := newWorker(t, s, renderer{}, store, &publisher{}, "w1")
	done := make(chan error)
	go func() { done <- w.Handle(context.Background(), record(t, n)) }()
	select {
	case err := <-done:
		t.Fatalf("returned while the other worker held the claim: %v", err)
	case <-time.After(300 * time.Millisecond): // asserting absence: it must still be waiting
	}
	if err := store.Release(context.Background(), n.ID, "other"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s.calls != 1 {
		t.Fatalf("sends = %d, want 1", s.calls)
	}
}

// TestFailsClosed: with the store unreachable nothing is sent and the
// record is not acknowledged.
func TestFailsClosed(t *testing.T) {
	s := &sender{}
	w := newWorker(t, s, renderer{}, brokenStore{}, &publisher{}, "w1")
	if err := w.Handle(context.Background(), record(t, note(0))); err == nil {
		t.Fatal("acknowledged without the store")
	}
	if s.calls != 0 {
		t.Fatalf("sent %d times without a claim", s.calls)
	}
}

// TestDLQWriteFailureKeepsRecord: if the DLQ cannot be written, the record
// is not acknowledged, and the key is not marked failed (so the retry
// writes the DLQ record instead of skipping it).
func TestDLQWriteFailureKeepsRecord(t *testing.T) {
	store := dedupe.NewMemory(dedupe.Options{})
	p := &publisher{fail: errors.New("kafka down")}
	s := &sender{script: []error{failure.Perm(failure.ReasonRejected, errors.New("no"))}}
	w := newWorker(t, s, renderer{}, store, p, "w1")
	n := note(0)
	if err := w.Handle(context.Background(), record(t, n)); err == nil {
		t.Fatal("acknowledged without a DLQ record")
	}
	if c, _ := store.Get(context.Background(), n.ID); c.State == dedupe.StateFailed {
		t.Fatal("marked failed before the DLQ record was durable")
	}
	p.fail = nil
	s.script = []error{failure.Perm(failure.ReasonRejected, errors.New("no"))}
	if err := w.Handle(context.Background(), record(t, n)); err != nil {
		t.Fatal(err)
	}
	if len(p.on(topics.DLQ)) != 1 {
		t.Fatal("no DLQ record after recovery")
	}
}

// TestRetryWaitsForNotBefore and abandons the wait when the partition stops.
func TestRetryWaitAbandonedOnStop(t *testing.T) {
	n := note(1)
	n.NotBefore = time.Now().Add(time.Hour)
	s := &sender{}
	w := newWorker(t, s, renderer{}, dedupe.NewMemory(dedupe.Options{}), &publisher{}, "w1")
	stop := make(chan struct{})
	ctx := queue.WithStopping(context.Background(), stop)
	var returned atomic.Bool
	done := make(chan error)
	go func() { err := w.Handle(ctx, record(t, n)); returned.Store(true); done <- err }()
	close(stop)
	if err := <-done; err == nil {
		t.Fatal("a retry whose wait was abandoned must stay unacknowledged")
	}
	if s.calls != 0 {
		t.Fatal("sent before not_before")
	}
}

// slowSender blocks until released, so two handlers overlap.
type slowSender struct {
	sender
	gate chan struct{}
}

func (s *slowSender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	<-s.gate
	return s.sender.Send(ctx, m)
}

// TestConcurrentCopiesInOneProcess: the same notification handled twice at
// once by one worker (a retry-topic copy and a redelivered copy) is sent once.
func TestConcurrentCopiesInOneProcess(t *testing.T) {
	store := dedupe.NewMemory(dedupe.Options{})
	s := &slowSender{gate: make(chan struct{})}
	w := newWorker(t, s, renderer{}, store, &publisher{}, "w1")
	m := record(t, note(0))
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- w.Handle(context.Background(), m) }()
	}
	close(s.gate)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if s.calls != 1 {
		t.Fatalf("sent %d times, want 1", s.calls)
	}
}

// A message the renderer shortened to fit its budget is sent and counted.
func TestShortenedIsCounted(t *testing.T) {
	m := obs.NewMetrics()
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: &sender{}, Renderer: shortening{}, Store: dedupe.NewMemory(dedupe.Options{}),
		Publisher: &publisher{}, Owner: "w1", Lease: 2 * time.Second, SendTimeout: time.Second, MaxAttempts: 3, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	n := note(0)
	if err := w.Handle(context.Background(), record(t, n)); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.Shortened.WithLabelValues("sms", n.Template)); got != 1 {
		t.Errorf("herald_messages_shortened_total = %v, want 1", got)
	}
}

type shortening struct{}

func (shortening) Render(n *notification.Notification) (*channels.Message, error) {
	return &channels.Message{NotificationID: n.ID, Channel: n.Channel, To: n.To, Text: "hi...", Shortened: []string{"reason"}}, nil
}

// The series a send touches: a sent notification counts as sent and is
// observed end to end and at the provider; the same record again counts as
// a duplicate; an outcome with a reason finds its own series (a permanent
// failure here).
func TestSendMetrics(t *testing.T) {
	m := obs.NewMetrics()
	snd := &sender{script: []error{nil, failure.Perm(failure.ReasonInvalidAddress, errors.New("21211"))}}
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: snd, Renderer: renderer{}, Store: dedupe.NewMemory(dedupe.Options{}),
		Publisher: &publisher{}, Owner: "w1", Lease: 2 * time.Second, SendTimeout: time.Second, MaxAttempts: 3, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n := note(0)
	for range 2 {
		if err := w.Handle(ctx, record(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	other := note(0)
	other.RecipientID = "mem_2"
	other.ID = notification.NewID(other.EventID, other.Template, other.Channel, other.RecipientID, other.To)
	if err := w.Handle(ctx, record(t, other)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		outcome, reason string
		want            float64
	}{{obs.OutcomeSent, "", 1}, {obs.OutcomeDuplicate, "", 1}, {obs.OutcomeFailed, string(failure.ReasonInvalidAddress), 1}} {
		if got := testutil.ToFloat64(m.Notifications.WithLabelValues("sms", c.outcome, c.reason)); got != c.want {
			t.Errorf("herald_notifications_total{outcome=%q,reason=%q} = %v, want %v", c.outcome, c.reason, got, c.want)
		}
	}
	if got := histogramCount(t, m.SendLatency.WithLabelValues("sms")); got != 2 {
		t.Errorf("send latency observed %d times, want 2 (both sends)", got)
	}
	if got := histogramCount(t, m.EndToEnd.WithLabelValues("sms")); got != 1 {
		t.Errorf("end-to-end latency observed %d times, want 1 (the sent one)", got)
	}
}

// TestOutcomeLinesCarryNoCaller: the process logger adds each line's caller
// (obs.NewLogger); an outcome line would always name the same line of
// worker.go, and finding it cost 1–2 µs and two allocations per
// notification (obs's BenchmarkLogLine).
func TestOutcomeLinesCarryNoCaller(t *testing.T) {
	log, logs := logtest.Observed()
	snd := &sender{script: []error{nil, failure.Perm(failure.ReasonInvalidAddress, errors.New("21211"))}}
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: snd, Renderer: renderer{}, Store: dedupe.NewMemory(dedupe.Options{}),
		Publisher: &publisher{}, Owner: "w1", Lease: 2 * time.Second, SendTimeout: time.Second, MaxAttempts: 3,
		Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	n, other := note(0), note(0)
	other.RecipientID = "mem_2"
	other.ID = notification.NewID(other.EventID, other.Template, other.Channel, other.RecipientID, other.To)
	for _, n := range []*notification.Notification{n, other} {
		if err := w.Handle(context.Background(), record(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	var outcomes []string
	for _, e := range logtest.Outcomes(t, logs) {
		outcomes = append(outcomes, e.ContextMap()["outcome"].(string))
		if e.ContextMap()["channel"] != "sms" {
			t.Errorf("outcome line %q without its channel: %v", e.Message, e.ContextMap())
		}
	}
	if len(outcomes) != 2 || outcomes[0] != obs.OutcomeSent || outcomes[1] != obs.OutcomeFailed {
		t.Errorf("outcome lines %v, want sent then failed", outcomes)
	}
}

func histogramCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	var d dto.Metric
	if err := o.(prometheus.Metric).Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetHistogram().GetSampleCount()
}

// TestTimedOutTryIsNotRetriedAtOnce: a provider call that timed out may
// have been accepted. Tried again at once, in process, a provider that is
// slow rather than down got every message up to three times per step of
// the retry ladder (an outside tester's fake Twilio, answering after the
// send timeout). A timed-out try goes to the retry topic instead, whose
// first retry waits, with a warning naming the notification; a refused try
// (503) is still retried at once.
func TestTimedOutTryIsNotRetriedAtOnce(t *testing.T) {
	log, logs := logtest.Observed()
	timeout := failure.Retry(failure.ReasonTimeout, errors.New("context deadline exceeded"))
	refused := failure.Retry(failure.ReasonUnavailable, errors.New("503"))
	snd := &sender{script: []error{refused, timeout}}
	pub := &publisher{}
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: snd, Renderer: renderer{}, Store: dedupe.NewMemory(dedupe.Options{}),
		Publisher: pub, Owner: "w1", Lease: 2 * time.Second, SendTimeout: time.Second, MaxAttempts: 3,
		Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	n := note(0)
	if err := w.Handle(context.Background(), record(t, n)); err != nil {
		t.Fatal(err)
	}
	if snd.calls != 2 {
		t.Errorf("%d provider calls, want 2: the refused one retried at once, the timed-out one not", snd.calls)
	}
	if got := len(pub.on(topics.Retry(notification.SMS))); got != 1 {
		t.Errorf("%d records on the retry topic, want 1", got)
	}
	var warned []map[string]any
	for _, e := range logs.FilterMessage(worker.TimedOutTryMessage).All() {
		warned = append(warned, e.ContextMap())
		n := 0
		for _, f := range e.Context {
			if f.Key == "channel" {
				n++
			}
		}
		if n != 1 { // the real binary's JSON line had it twice
			t.Errorf("the warning carries %d channel fields, want 1", n)
		}
	}
	if len(warned) != 1 {
		t.Fatalf("%d warnings %q, want 1 (the timed-out try, not the refused one): %v", len(warned), worker.TimedOutTryMessage, warned)
	}
	if w := warned[0]; w["notification_id"] != n.ID || w["channel"] != "sms" || w["try"] != int64(2) {
		t.Errorf("warning fields %v, want the notification's id, its channel and try 2", w)
	}
}
