package kafkarun_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// overlaps is what the members of one group did with a record: who was
// running it, and every time a member started it while another still ran
// it (two processes on one key at once).
type overlaps struct {
	mu      sync.Mutex
	running map[string]bool
	found   []string
	started chan string
}

func newOverlaps() *overlaps {
	return &overlaps{running: map[string]bool{}, started: make(chan string, 2)}
}

// handler is member name's: a provider call of 7 s that honours ctx
// (under HERALD_SEND_TIMEOUT's 15 s default, and under the drain deadlines
// of the tests).
func (o *overlaps) handler(name string) queue.Handler {
	return func(ctx context.Context, m *queue.Message) error {
		o.mu.Lock()
		for other, on := range o.running {
			if on && other != name {
				o.found = append(o.found, name+" started offset "+strconv.FormatInt(m.Offset, 10)+" while "+other+" still ran it")
			}
		}
		o.running[name] = true
		o.mu.Unlock()
		select {
		case o.started <- name:
		default:
		}
		defer func() { o.mu.Lock(); o.running[name] = false; o.mu.Unlock() }()
		select {
		case <-time.After(7 * time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// firstStart waits for a member to start the record and returns its name.
func (o *overlaps) firstStart(t *testing.T) string {
	t.Helper()
	select {
	case name := <-o.started:
		return name
	case <-time.After(30 * time.Second):
		t.Fatal("the record was not handled")
		return ""
	}
}

func (o *overlaps) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, f := range o.found {
		t.Error(f)
	}
}

// shutdownMidSend starts members a and b of one group on a topic of four
// partitions (two each, one of them idle), has one of them start a 7 s
// record, and stops that owner as SIGTERM would, calling during, if not
// nil, half a second into its drain. It returns once the owner has stopped.
func shutdownMidSend(t *testing.T, topic string, during func(kafkarun.ConsumerConfig, *overlaps)) *overlaps {
	t.Helper()
	c, _ := setup(t, topic, 4)
	o := newOverlaps()
	cfg := kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: topic + "-g", Topics: []string{topic},
		SessionTimeout: 3 * time.Second, RebalanceTimeout: 3 * time.Second, HeartbeatInterval: 300 * time.Millisecond,
		DrainTimeout: 15 * time.Second, CommitInterval: 50 * time.Millisecond}
	stops := map[string]func(){}
	var cons []*kafkarun.Consumer
	for _, name := range []string{"a", "b"} {
		co, stop := runConsumer(t, cfg, o.handler(name))
		stops[name] = stop
		cons = append(cons, co)
	}
	poll.Until(t, 30*time.Second, "both members joined", func() bool { return cons[0].Joined() && cons[1].Joined() })
	time.Sleep(time.Second) // the group settled
	produceTo(t, c.Brokers(), topic, 0, "one")
	owner := o.firstStart(t)

	stopped := make(chan struct{})
	go func() { stops[owner](); close(stopped) }()
	if during != nil {
		time.Sleep(500 * time.Millisecond)
		during(cfg, o)
	}
	select {
	case <-stopped:
	case <-time.After(40 * time.Second):
		t.Fatal("the owner did not stop")
	}
	time.Sleep(500 * time.Millisecond)
	return o
}

// TestShutdownDrainKeepsThePartition: a member that shuts down while a
// handler runs drains it (up to DrainTimeout) before its partition moves,
// and the next owner does not start the record meanwhile. kafka-go
// heartbeats only while a generation lasts; Run used to end the generation
// before draining, so a drain longer than the session timeout got the
// member expelled and its partition handed over mid-drain. The owner's
// idle partition, whose drain is over at once, must not end the generation
// either.
func TestShutdownDrainKeepsThePartition(t *testing.T) {
	shutdownMidSend(t, "drainover", nil).check(t)
}

// TestShutdownDrainThroughARebalance: a rebalance during a shutdown's drain
// (a rolling deploy's new pod joining) ends the generation, and with it the
// heartbeat, whatever the draining member does. The drain then has the
// revoke's deadline from that moment, not what is left of DrainTimeout:
// past the session timeout the member would be expelled and its record
// started by another while it still ran here. Found by a review.
func TestShutdownDrainThroughARebalance(t *testing.T) {
	shutdownMidSend(t, "drainrebal", func(cfg kafkarun.ConsumerConfig, o *overlaps) {
		runConsumer(t, cfg, o.handler("c")) // a new pod joins mid-drain
	}).check(t)
}

// TestRevokeDrainKeepsThePartition: the same on a revoke, with a rebalance
// timeout longer than the session timeout (what a slow provider's operator
// might set). No heartbeat goes out while a revoked partition drains, so a
// drain bounded by the rebalance timeout alone outlived the session: the
// coordinator expelled the member and handed its partition on while its
// handler still ran.
func TestRevokeDrainKeepsThePartition(t *testing.T) {
	const topic = "revokeover"
	c, p := setup(t, topic, 1)
	o := newOverlaps()
	cfg := kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "revokeover-g", Topics: []string{topic},
		SessionTimeout: 3 * time.Second, RebalanceTimeout: 12 * time.Second, HeartbeatInterval: 300 * time.Millisecond,
		CommitInterval: 50 * time.Millisecond}
	a, _ := runConsumer(t, cfg, o.handler("a"))
	poll.Until(t, 30*time.Second, "a joined", a.Joined)
	produce(t, p, topic, 1, 1)
	o.firstStart(t)
	runConsumer(t, cfg, o.handler("b")) // b joins: a's generation ends, and a drains
	time.Sleep(12 * time.Second)
	o.check(t)
}
