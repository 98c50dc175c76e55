package worker_test

import (
	"context"
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

// onSharedPipes is a worker on a fresh redis-server, wired as herald run
// wires one: its idempotency store and suppression list share pipelines,
// which rec records.
func onSharedPipes(t *testing.T) (w *worker.Worker, store dedupe.Store, rec *pipelines) {
	t.Helper()
	srv := redistest.Start(t)
	client := redis.NewClient(srv.Options())
	t.Cleanup(func() { client.Close() })
	rec = &pipelines{}
	client.AddHook(rec)
	pipes := rpipe.New(client, 0)
	t.Cleanup(pipes.Close)
	store = dedupe.NewRedis(nil, dedupe.Options{Pipes: pipes})
	return redisWorker(t, store, suppress.NewRedisOn(pipes, "", nil)), store, rec
}

// redisWorker is an SMS worker on store and list whose lease covers a send
// without renewal, so its Redis calls are the claim, the lookup and the
// outcome alone.
func redisWorker(tb testing.TB, store dedupe.Store, list suppress.Store) *worker.Worker {
	tb.Helper()
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: &sender{}, Renderer: renderer{}, Store: store, Publisher: &publisher{},
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
	w, store, rec := onSharedPipes(t)
	ctx := context.Background()

	warm := note(0) // loads the scripts: a first EVALSHA comes back NOSCRIPT
	if err := w.Handle(ctx, record(t, warm)); err != nil {
		t.Fatal(err)
	}
	rec.take()

	n := note(0)
	n.EventID, n.To = "evt_2", "+447700900124"
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	if err := w.Handle(ctx, record(t, n)); err != nil {
		t.Fatal(err)
	}
	got := rec.take()
	want := [][]string{{"HGET herald:suppress:sms", "EVALSHA"}, {"EVALSHA"}} // lookup and claim; then the sent mark (the lease covers the send)
	if len(got) != len(want) || strings.Join(got[0], ",") != strings.Join(want[0], ",") || strings.Join(got[1], ",") != strings.Join(want[1], ",") {
		t.Fatalf("pipelines = %q, want %q", got, want)
	}
	if c, err := store.Get(ctx, n.ID); err != nil || c.State != dedupe.StateSent {
		t.Fatalf("key = %+v, %v; want sent", c, err)
	}
}

// TestNoLookupLeftQueuedAfterAWaitedDuplicate: a claim that waits for
// another worker and then finds the notification sent is a duplicate; no
// suppression lookup is left queued on the shared pipes to ride out with
// some later, unrelated call.
func TestNoLookupLeftQueuedAfterAWaitedDuplicate(t *testing.T) {
	w, store, rec := onSharedPipes(t)
	ctx := context.Background()
	n := note(0)
	if c, err := store.Claim(ctx, n.ID, "elsewhere", 400*time.Millisecond); err != nil || !c.Acquired {
		t.Fatalf("claim elsewhere: %+v, %v", c, err)
	}
	rec.take()
	handled := make(chan error, 1)
	go func() { handled <- w.Handle(ctx, record(t, n)) }()
	for claimed := false; !claimed; { // the worker's first claim (and its lookup) found it held
		time.Sleep(5 * time.Millisecond)
		for _, p := range rec.take() {
			claimed = claimed || strings.Contains(strings.Join(p, ","), "EVALSHA")
		}
	}
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
