package kafkarun_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// livenessWithClock is a Liveness with a one-minute window on a clock that
// moves only when advance is called.
func livenessWithClock() (l *kafkarun.Liveness, advance func(time.Duration)) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance = func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	return &kafkarun.Liveness{Window: time.Minute, Now: clock}, advance
}

// hanger is a handler tracked by a Liveness that holds the calls its hang
// picks until release, those its wait picks waiting by design
// (queue.Waiting) meanwhile.
type hanger struct {
	h       queue.Handler
	release chan struct{}
	started chan struct{} // a held call began
	done    chan struct{} // a call made by start returned
}

func hang(l *kafkarun.Liveness, group, topic string, hold, wait func(*queue.Message) bool) *hanger {
	g := &hanger{release: make(chan struct{}), started: make(chan struct{}, 8), done: make(chan struct{}, 8)}
	g.h = l.Track(group, []string{topic}, func(ctx context.Context, m *queue.Message) error {
		if wait(m) {
			done := queue.Waiting(ctx)
			defer done()
		}
		if hold(m) {
			g.started <- struct{}{}
			<-g.release
		}
		return nil
	})
	return g
}

// start calls the handler for the record at offset, which hold picks, and
// returns once the call is held.
func (g *hanger) start(offset int64) {
	go func() { _ = g.h(context.Background(), &queue.Message{Offset: offset}); g.done <- struct{}{} }()
	<-g.started
}

// finish releases the held calls and waits for the n that start made.
func (g *hanger) finish(n int) {
	close(g.release)
	for range n {
		<-g.done
	}
}

func every(*queue.Message) bool { return true }
func none(*queue.Message) bool  { return false }

// A handler call that runs the whole stall window without finishing makes
// Check fail; once it returns, the consumer is healthy again. A wait by
// design (queue.Waiting) is not a stall.
func TestLivenessStall(t *testing.T) {
	l, advance := livenessWithClock()
	stuck := hang(l, "herald-email", "herald.email.v1", every, none)
	waiting := hang(l, "herald-sms", "herald.sms.v1", every, every)
	stuck.start(0)
	waiting.start(0)
	if err := l.Check(); err != nil {
		t.Fatalf("healthy at first: %v", err)
	}
	advance(2 * time.Minute)
	err := l.Check()
	if err == nil {
		t.Fatal("a call busy for twice the window is not reported")
	}
	t.Logf("stalled: %v", err)
	stuck.finish(1)
	waiting.finish(1)
	if err := l.Check(); err != nil {
		t.Errorf("after the call returned: %v", err)
	}
}

// TestLivenessAfterIdleAndWhileFinishing: the stall window of a call that
// starts after a long idle runs from its start, not from the last sign of
// progress an hour before; and while one call hangs, others finishing is
// progress. (These are the two moments a count of the running calls kept
// without the lock must still report; efcd4e6 tried one, since reverted.)
func TestLivenessAfterIdleAndWhileFinishing(t *testing.T) {
	l, advance := livenessWithClock()
	g := hang(l, "herald-email", "herald.email.v1", func(m *queue.Message) bool { return m.Offset == 0 }, none)
	advance(time.Hour) // idle: nothing checked, nothing ran
	g.start(0)
	if err := l.Check(); err != nil {
		t.Fatalf("a call just started after an hour idle: %v", err)
	}
	// Others finish every 30 s while the first hangs: progress.
	for i := 1; i <= 10; i++ {
		advance(30 * time.Second)
		if err := g.h(context.Background(), &queue.Message{Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
		if err := l.Check(); err != nil {
			t.Fatalf("after %d calls finished, one every 30 s: %v", i, err)
		}
	}
	// Nothing finishes for longer than the window: stalled.
	advance(61 * time.Second)
	if err := l.Check(); err == nil {
		t.Error("a call hung for 61 s with none finishing, and Check passed")
	}
	g.finish(1)
	if err := l.Check(); err != nil {
		t.Errorf("after the hung call returned: %v", err)
	}
}

// TestLivenessSecondCallWhileOneWaits: while one call waits by design (a
// retry's not-before time, up to half an hour), a second call that starts
// and hangs is stalled a window after its own start, not at once: the
// time before it was not busy. (A lock-free count of the running calls
// that recorded only the first start got this wrong; review of issue
// 14's fifteenth pass.)
func TestLivenessSecondCallWhileOneWaits(t *testing.T) {
	l, advance := livenessWithClock()
	g := hang(l, "herald-email", "herald.email.v1", every, func(m *queue.Message) bool { return m.Offset == 0 })
	g.start(0)
	advance(time.Hour)
	g.start(1)
	if err := l.Check(); err != nil {
		t.Errorf("a call just started beside one waiting by design for an hour: %v", err)
	}
	advance(61 * time.Second)
	if err := l.Check(); err == nil {
		t.Error("the second call hung for 61 s, and Check passed")
	}
	g.finish(2)
}
