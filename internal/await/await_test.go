package await_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gymhq/herald/internal/await"
)

// quick retries at once, so the tests run at the speed of their channels.
func quick() backoff.BackOff { return &backoff.ZeroBackOff{} }

// scripted is a dependency whose attempts the test answers one by one.
type scripted struct {
	attempts chan chan error // each attempt asks for its answer here
}

func newScripted() *scripted { return &scripted{attempts: make(chan chan error)} }

func (s *scripted) reach(ctx context.Context) error {
	answer := make(chan error)
	select {
	case s.attempts <- answer:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-answer:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// answer waits for the next attempt and answers it with err.
func (s *scripted) answer(t *testing.T, err error) {
	t.Helper()
	select {
	case a := <-s.attempts:
		a <- err
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt within 10s")
	}
}

func (s *scripted) dep(kind, addr, variable string) await.Dependency {
	return await.Dependency{Kind: kind, Address: addr, Variable: variable, Reach: s.reach}
}

func TestWaitsUntilEveryDependencyAnswers(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	w := &await.Waiter{Log: zap.New(core), NewBackOff: quick}
	kafka, redis := newScripted(), newScripted()
	done := make(chan error, 1)
	go func() {
		done <- w.All(context.Background(),
			kafka.dep("kafka", "127.0.0.1:1", "HERALD_KAFKA_BROKERS"),
			redis.dep("redis", "redis://r:6379/0", "HERALD_REDIS_URL"))
	}()

	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	kafka.answer(t, refused)
	kafka.answer(t, refused) // the first error is recorded before the second attempt
	pending := w.Pending()
	if pending == nil {
		t.Fatal("Pending is nil while waiting")
	}
	for _, want := range []string{
		"kafka 127.0.0.1:1 (HERALD_KAFKA_BROKERS): dial tcp 127.0.0.1:1: connect: connection refused",
		"redis redis://r:6379/0 (HERALD_REDIS_URL): not reached yet",
	} {
		if !strings.Contains(pending.Error(), want) {
			t.Errorf("Pending = %q, want it to contain %q", pending, want)
		}
	}
	if strings.Contains(pending.Error(), "\n") {
		t.Errorf("Pending = %q, want one line", pending)
	}

	redis.answer(t, nil)
	kafka.answer(t, refused)
	kafka.answer(t, nil)
	if err := <-done; err != nil {
		t.Fatalf("All = %v, want nil", err)
	}
	if err := w.Pending(); err != nil {
		t.Errorf("Pending after All = %v, want nil", err)
	}

	waits := logs.FilterMessage("waiting for kafka 127.0.0.1:1 (HERALD_KAFKA_BROKERS)").All()
	if len(waits) != 3 {
		t.Errorf("logged %d failed attempts, want 3 (one per failure): %v", len(waits), logs.All())
	}
	for _, e := range waits {
		f := e.ContextMap()
		if f["variable"] != "HERALD_KAFKA_BROKERS" || f["address"] != "127.0.0.1:1" || f["error"] == nil || e.Level != zap.WarnLevel {
			t.Errorf("log line %s %q %v: want a warning with the variable, address and error", e.Level, e.Message, f)
		}
	}
	if n := logs.FilterMessage("reached kafka 127.0.0.1:1 (HERALD_KAFKA_BROKERS)").Len(); n != 1 {
		t.Errorf("logged %d 'reached' lines for kafka, want 1", n)
	}
	if n := logs.FilterMessage("reached redis redis://r:6379/0 (HERALD_REDIS_URL)").Len(); n != 0 {
		t.Errorf("logged %d 'reached' lines for redis, which answered at once; want 0", n)
	}
}

func TestRefusalEndsTheWait(t *testing.T) {
	w := &await.Waiter{NewBackOff: quick}
	kafka, redis := newScripted(), newScripted()
	done := make(chan error, 1)
	go func() {
		done <- w.All(context.Background(),
			kafka.dep("kafka", "k:9092", "HERALD_KAFKA_BROKERS"),
			redis.dep("redis", "redis://r:6379/0", "HERALD_REDIS_URL"))
	}()
	kafka.answer(t, errors.New("connection refused"))
	redis.answer(t, await.Refused(errors.New("WRONGPASS invalid username-password pair")))
	// kafka's wait is cancelled: All returns without another answer.
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "redis redis://r:6379/0 (HERALD_REDIS_URL): WRONGPASS") {
			t.Errorf("All = %v, want the refusal naming the dependency", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("All did not return after a refusal")
	}
}

func TestStopsWhenContextEnds(t *testing.T) {
	w := &await.Waiter{NewBackOff: quick}
	kafka := newScripted()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.All(ctx, kafka.dep("kafka", "k:9092", "HERALD_KAFKA_BROKERS")) }()
	kafka.answer(t, errors.New("connection refused"))
	cancel() // SIGTERM while waiting
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("All = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("All did not return after ctx ended")
	}
}

// TestBackoffSchedule: jittered, growing, capped at 15s ±50%; the log rate
// and the time to notice a returning server follow from it.
func TestBackoffSchedule(t *testing.T) {
	b := await.Backoff()
	lo, hi := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second},
		[]time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 6 * time.Second}
	for i := range lo {
		if d := b.NextBackOff(); d < lo[i] || d > hi[i] {
			t.Errorf("retry %d after %v, want within [%v, %v]", i+1, d, lo[i], hi[i])
		}
	}
	for i := 0; i < 20; i++ {
		if d := b.NextBackOff(); d > 22500*time.Millisecond || d == backoff.Stop {
			t.Fatalf("retry after %v, want at most 22.5s and never a stop", d)
		}
	}
}
