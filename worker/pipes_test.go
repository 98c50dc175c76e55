package worker_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/rpipe"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/worker"
)

// pipelines records the commands of each pipeline a client sends, as
// "EVALSHA" or "HGET key".
type pipelines struct {
	mu   sync.Mutex
	sent [][]string
}

func (p *pipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (p *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (p *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var names []string
		for _, c := range cmds {
			name := strings.ToUpper(c.Name())
			if name == "HGET" {
				name += " " + c.Args()[1].(string)
			}
			names = append(names, name)
		}
		p.mu.Lock()
		p.sent = append(p.sent, names)
		p.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (p *pipelines) take() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.sent
	p.sent = nil
	return out
}

// shared is a worker on a fresh redis-server, wired as herald run wires
// one: its idempotency store and suppression list share pipelines, which
// rec records.
type shared struct {
	w     *worker.Worker
	snd   *sender
	store dedupe.Store
	list  suppress.Store
	rec   *pipelines
}

func onSharedPipes(t *testing.T) *shared {
	t.Helper()
	srv := redistest.Start(t)
	client := redis.NewClient(srv.Options())
	t.Cleanup(func() { client.Close() })
	s := &shared{snd: &sender{}, rec: &pipelines{}}
	client.AddHook(s.rec)
	pipes := rpipe.New(client, 0)
	t.Cleanup(pipes.Close)
	s.store = dedupe.NewRedis(nil, dedupe.Options{Pipes: pipes})
	s.list = suppress.NewRedisOn(pipes, "", nil)
	s.w = redisWorker(t, s.snd, s.store, s.list)
	return s
}

// waitForClaim waits until a pipeline with a script has gone out: the
// worker's first claim.
func (s *shared) waitForClaim(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, p := range s.rec.take() {
			if strings.Contains(strings.Join(p, ","), "EVALSHA") {
				return
			}
		}
	}
	t.Fatal("the worker never claimed")
}

// redisWorker is an SMS worker on store and list whose lease covers a send
// without renewal, so its Redis calls are the claim, the lookup and the
// outcome alone.
func redisWorker(tb testing.TB, snd *sender, store dedupe.Store, list suppress.Store) *worker.Worker {
	tb.Helper()
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: snd, Renderer: renderer{}, Store: store, Publisher: &publisher{},
		Suppressions: list, Owner: "w1", Lease: 30 * time.Second, SendTimeout: time.Second, MaxAttempts: 3, Metrics: obs.NewMetrics()})
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// TestSuppressionLookupTravelsWithTheClaim: as herald run wires them, the
// idempotency store and the suppression list share their pipelines, and a
// notification's lookup goes in its claim's pipeline: one round trip
// before the send, not the claim's and then the lookup's.
func TestSuppressionLookupTravelsWithTheClaim(t *testing.T) {
	s := onSharedPipes(t)
	ctx := context.Background()
	warm := note(0) // loads the scripts: a first EVALSHA comes back NOSCRIPT
	if err := s.w.Handle(ctx, record(t, warm)); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"HGET herald:suppress:sms", "EVALSHA"}, {"EVALSHA"}} // lookup and claim; then the sent mark (the lease covers the send)
	var got [][]string
	// A flusher that has just answered a batch looks at its queue once more
	// before it sleeps; a lookup queued in that instant goes out alone. So
	// the first of three notifications that meets it asleep must pair.
	for i := range 3 {
		time.Sleep(20 * time.Millisecond)
		s.rec.take()
		n := note(0)
		n.EventID, n.To = "evt_"+strconv.Itoa(i+2), "+44770090012"+strconv.Itoa(i)
		n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
		if err := s.w.Handle(ctx, record(t, n)); err != nil {
			t.Fatal(err)
		}
		got = s.rec.take()
		if c, err := s.store.Get(ctx, n.ID); err != nil || c.State != dedupe.StateSent {
			t.Fatalf("key = %+v, %v; want sent", c, err)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
	}
	t.Fatalf("pipelines = %q, want %q", got, want)
}

// TestNoLookupLeftQueuedAfterAWaitedDuplicate: a claim that waits for
// another worker and then finds the notification sent is a duplicate; no
// suppression lookup is left queued on the shared pipes to ride out with
// some later, unrelated call.
func TestNoLookupLeftQueuedAfterAWaitedDuplicate(t *testing.T) {
	s := onSharedPipes(t)
	w, store, rec := s.w, s.store, s.rec
	ctx := context.Background()
	n := note(0)
	if c, err := store.Claim(ctx, n.ID, "elsewhere", 5*time.Second); err != nil || !c.Acquired {
		t.Fatalf("claim elsewhere: %+v, %v", c, err)
	}
	rec.take()
	handled := make(chan error, 1)
	go func() { handled <- w.Handle(ctx, record(t, n)) }()
	s.waitForClaim(t) // its first claim (and its lookup) found it held
	if err := store.MarkSent(ctx, n.ID, "elsewhere", "pm-1"); err != nil {
		t.Fatal(err)
	}
	if err := <-handled; err != nil {
		t.Fatal(err)
	}
	if c, err := store.Get(ctx, n.ID); err != nil || c.State != dedupe.StateSent || c.Owner != "elsewhere" {
		t.Fatalf("key = %+v, %v; want sent elsewhere", c, err)
	}
	if _, err := store.Get(ctx, "unrelated"); err != nil { // takes anything left queued with it
		t.Fatal(err)
	}
	for _, p := range rec.take() {
		if strings.Contains(strings.Join(p, ","), "HGET") {
			t.Fatalf("a lookup went out after the claim found the notification sent: %q", p)
		}
	}
}

// TestWaitedClaimReadsTheListAgain: an address suppressed while the worker
// waited for another worker's claim is not sent to once the claim is
// taken: the lookup that went with the first claim is stale.
func TestWaitedClaimReadsTheListAgain(t *testing.T) {
	s := onSharedPipes(t)
	ctx := context.Background()
	n := note(0)
	if c, err := s.store.Claim(ctx, n.ID, "elsewhere", 5*time.Second); err != nil || !c.Acquired {
		t.Fatalf("claim elsewhere: %+v, %v", c, err)
	}
	s.rec.take()
	handled := make(chan error, 1)
	go func() { handled <- s.w.Handle(ctx, record(t, n)) }()
	s.waitForClaim(t) // found it held, and read the list: not suppressed
	if err := s.list.Add(ctx, "sms", n.To, "unsubscribed"); err != nil {
		t.Fatal(err)
	}
	if err := s.store.Release(ctx, n.ID, "elsewhere"); err != nil { // the other worker gave up
		t.Fatal(err)
	}
	if err := <-handled; err != nil {
		t.Fatal(err)
	}
	if s.snd.calls != 0 {
		t.Fatalf("sent %d times to an address suppressed while the claim waited", s.snd.calls)
	}
	if c, err := s.store.Get(ctx, n.ID); err != nil || c.State != dedupe.StateFailed || c.Reason != obs.OutcomeSuppressed {
		t.Fatalf("key = %+v, %v; want failed, suppressed", c, err)
	}
}
