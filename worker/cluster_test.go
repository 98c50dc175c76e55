package worker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/rpipe"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/topics"
	"github.com/gymhq/herald/worker"
)

// countingSender counts sends per notification; a send of hold blocks
// until release is closed, after saying so on entered.
type countingSender struct {
	hold     string
	entered  chan struct{}
	release  chan struct{}
	mu       sync.Mutex
	sends    map[string]int
	enterOne sync.Once
}

func (s *countingSender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	if m.NotificationID == s.hold {
		s.enterOne.Do(func() { close(s.entered) })
		<-s.release
	}
	s.mu.Lock()
	s.sends[m.NotificationID]++
	s.mu.Unlock()
	return channels.Receipt{ProviderMessageID: "prov-" + m.NotificationID}, nil
}
func (s *countingSender) Close() error { return nil }

// TestDeliveryThroughClusterFailover delivers notifications whose keys span
// every slot range of a 3-master, 3-replica Redis Cluster, each record
// handled twice at once by different workers (a redelivery after a
// rebalance), while the master owning one claimed key fails over to its
// replica (CLUSTER FAILOVER) in the middle of that notification's send.
// Every notification is sent exactly once: none lost, none twice, the held
// claim survives the failover, and its outcome is recorded on the new
// master.
func TestDeliveryThroughClusterFailover(t *testing.T) {
	deliverThroughFailover(t, false)
}

// TestDeliveryThroughClusterMasterCrash is the same with the master
// SIGKILLed and its replica elected after the node timeout. Nothing is
// lost. Redis replicates asynchronously, so a claim or outcome the master
// acknowledged just before dying may be missing on the replica; a message
// whose record was lost that way may be sent again (the admitted window,
// logged as a count, not asserted away).
func TestDeliveryThroughClusterMasterCrash(t *testing.T) {
	deliverThroughFailover(t, true)
}

func deliverThroughFailover(t *testing.T, crash bool) {
	c := redistest.StartCluster(t, 3, 1)
	client, err := dedupe.Connect(dedupe.Target{URL: c.URL(), Mode: dedupe.Cluster})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	// As herald run wires them: the claims, outcome marks and suppression
	// lookups share pipelines, which the cluster client splits by node.
	pipes := rpipe.New(client, 0)
	t.Cleanup(pipes.Close)
	store := dedupe.NewRedis(client, dedupe.Options{Pipes: pipes})
	list := suppress.NewRedisOn(pipes, "", nil)

	const count = 300
	notes := make([]*notification.Notification, count)
	masters := map[string]bool{}
	for i := range notes {
		n := note(0)
		n.RecipientID, n.To = fmt.Sprintf("mem_%d", i), fmt.Sprintf("+4477009%05d", i)
		n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
		notes[i] = n
		if i < 30 {
			masters[c.MasterOf(dedupe.DefaultPrefix+n.ID)] = true
		}
	}
	if len(masters) != 3 {
		t.Fatalf("keys on %d masters, want 3", len(masters))
	}
	held := notes[0]
	snd := &countingSender{hold: held.ID, entered: make(chan struct{}), release: make(chan struct{}), sends: map[string]int{}}
	pub := &publisher{}
	workers := make([]*worker.Worker, 2)
	for i := range workers {
		w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: snd, Renderer: renderer{}, Store: store, Publisher: pub,
			Suppressions: list, Owner: fmt.Sprintf("w%d", i), Lease: 30 * time.Second, SendTimeout: 20 * time.Second, MaxAttempts: 8})
		if err != nil {
			t.Fatal(err)
		}
		workers[i] = w
	}

	// handle is the runtime's part: a record whose Handle fails (Redis
	// busy failing over) is handled again until it has an outcome.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2*count)
	var failed atomic.Int64 // Handle calls that returned an error and were retried
	handle := func(w *worker.Worker, n *notification.Notification) {
		defer wg.Done()
		rec := record(t, n)
		for {
			err := w.Handle(ctx, rec)
			if err == nil {
				return
			}
			failed.Add(1)
			if ctx.Err() != nil {
				errs <- fmt.Errorf("%s: %w", n.ID, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	wg.Add(1)
	go handle(workers[0], held)
	select {
	case <-snd.entered: // workers[0] holds the claim and is mid-send
	case <-ctx.Done():
		t.Fatal("the held send never started")
	}
	// The stream is paced (a workload shape, not a synchronisation) so that
	// it runs before, during and after the failover.
	streamed := make(chan struct{})
	var started atomic.Int64
	go func() {
		defer close(streamed)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for _, n := range notes {
			<-tick.C
			started.Add(1)
			wg.Add(2)
			go handle(workers[1], n) // held waits: its claim is in flight
			if n != held {
				go handle(workers[0], n)
			} else {
				wg.Done()
			}
		}
	}()
	before, t0 := started.Load(), time.Now()
	var from, to string
	if crash {
		from, to = c.Kill(dedupe.DefaultPrefix + held.ID)
	} else {
		from, to = c.Failover(dedupe.DefaultPrefix + held.ID)
	}
	t.Logf("the master of the held key moved from %s to %s in %v, while notifications %d..%d started",
		from, to, time.Since(t0).Round(time.Millisecond), before, started.Load())
	if !crash {
		if cl, err := store.Get(ctx, held.ID); err != nil || cl.State != dedupe.StateInFlight || cl.Owner == "" {
			t.Fatalf("held claim after the failover: %+v, %v; want still in flight", cl, err)
		}
	}
	close(snd.release)
	<-streamed
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	snd.mu.Lock()
	defer snd.mu.Unlock()
	lost, twice := 0, 0
	for _, n := range notes {
		switch snd.sends[n.ID] {
		case 0:
			lost++
		case 1:
		default:
			twice++
		}
		if cl, err := store.Get(ctx, n.ID); err != nil || cl.State != dedupe.StateSent {
			t.Errorf("%s: state %+v, %v; want sent", n.ID, cl, err)
		}
	}
	if lost != 0 || (twice != 0 && !crash) {
		t.Errorf("%d notifications: %d lost, %d sent more than once", count, lost, twice)
	}
	poll.UntilNil(t, 10*time.Second, "Redis checks to pass after the failover", func() error {
		return dedupe.NewChecker(client, dedupe.Cluster, false, nil).Ready(ctx)
	})
	if d := pub.on(topics.DLQ); len(d) != 0 {
		t.Errorf("%d records dead-lettered", len(d))
	}
	t.Logf("%d notifications on 3 masters, each handled by two workers: %d lost, %d sent twice, %d Handle calls failed during the failover and were retried, %d records moved to the retry topic",
		count, lost, twice, failed.Load(), len(pub.on(topics.Retry(notification.SMS))))
}
