package kafkarun

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gymhq/herald/internal/kafkatest"
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

	// groupWrites calls take every grouped write; they wait on the broker.
	var wg sync.WaitGroup
	for range groupWrites {
		wg.Go(func() {
			if err := p.Publish(ctx, queue.Message{Topic: topic, Value: []byte("held")}); err != nil {
				t.Errorf("held publish: %v", err)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.g.mu.Lock()
		busy := p.g.writing == groupWrites && len(p.g.pending) == 0
		p.g.mu.Unlock()
		if busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("grouped writes never all out")
		}
		time.Sleep(time.Millisecond)
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
