package kafkarun_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// A handler call that runs the whole stall window without finishing makes
// Check fail; once it returns, the consumer is healthy again. A wait by
// design (queue.Waiting) is not a stall.
func TestLivenessStall(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	l := &kafkarun.Liveness{Window: time.Minute, Now: clock}

	release := make(chan struct{})
	started := make(chan struct{}, 2)
	stuck := l.Track("herald-email", []string{"herald.email.v1"}, func(ctx context.Context, m *queue.Message) error {
		started <- struct{}{}
		<-release
		return nil
	})
	waiting := l.Track("herald-sms", []string{"herald.sms.v1"}, func(ctx context.Context, m *queue.Message) error {
		done := queue.Waiting(ctx)
		defer done()
		started <- struct{}{}
		<-release
		return nil
	})
	done := make(chan struct{}, 2)
	go func() { stuck(context.Background(), &queue.Message{}); done <- struct{}{} }()
	go func() { waiting(context.Background(), &queue.Message{}); done <- struct{}{} }()
	<-started
	<-started
	if err := l.Check(); err != nil {
		t.Fatalf("healthy at first: %v", err)
	}
	advance(2 * time.Minute)
	err := l.Check()
	if err == nil {
		t.Fatal("a call busy for twice the window is not reported")
	}
	t.Logf("stalled: %v", err)
	close(release)
	<-done
	<-done
	if err := l.Check(); err != nil {
		t.Errorf("after the call returned: %v", err)
	}
}
