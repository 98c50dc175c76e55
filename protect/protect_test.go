package protect_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/protect"
)

// TestRedisLimiterIsFleetWide: two limiters (two pods) sharing a key share
// one budget. Many goroutines on each push as hard as they can for a while;
// the sends admitted over the measured interval stay within the GCRA bound
// rate·T + burst for the pair together, i.e. the replicas do not multiply
// the rate. Counts are asserted, not speed.
func TestRedisLimiterIsFleetWide(t *testing.T) {
	srv := redistest.Start(t)
	const rate = 20
	pods := []*protect.RedisLimiter{
		protect.NewRedisLimiter(srv.Client(), "herald:sms", rate),
		protect.NewRedisLimiter(redisClient(t, srv), "herald:sms", rate),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var admitted [2]atomic.Int64
	var waited atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i, l := range pods {
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					d, err := l.Wait(ctx)
					if err != nil {
						if !failure.IsPaused(err) {
							t.Errorf("Wait error is not a pause: %v", err)
						}
						return
					}
					if d > 0 {
						waited.Add(1)
					}
					admitted[i].Add(1)
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := admitted[0].Load() + admitted[1].Load()
	bound := int64(rate*elapsed.Seconds()) + rate + 1
	t.Logf("admitted %d + %d = %d in %v (shared bound %d); %d waits",
		admitted[0].Load(), admitted[1].Load(), total, elapsed.Round(time.Millisecond), bound, waited.Load())
	if total > bound {
		t.Errorf("two pods admitted %d sends in %v, over the shared bound %d", total, elapsed, bound)
	}
	if admitted[0].Load() == 0 || admitted[1].Load() == 0 {
		t.Errorf("a pod was starved: %d / %d", admitted[0].Load(), admitted[1].Load())
	}
	if total < rate {
		t.Errorf("only %d sends admitted; the limiter is not admitting its burst", total)
	}
	if waited.Load() == 0 {
		t.Error("no send ever waited: the limiter did not limit")
	}
}

// redisClient is a second, independent connection pool: another pod.
func redisClient(t *testing.T, srv *redistest.Server) *redis.Client {
	c := redis.NewClient(srv.Options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRedisLimiterFailsClosed: with Redis gone the limiter pauses the send.
func TestRedisLimiterFailsClosed(t *testing.T) {
	srv := redistest.Start(t)
	l := protect.NewRedisLimiter(srv.Client(), "herald:email", 10)
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.Wait(ctx); !failure.IsPaused(err) {
		t.Fatalf("Wait with Redis down = %v, want a pause", err)
	}
}

func TestMemoryLimiter(t *testing.T) {
	const rate = 50
	l := protect.NewMemoryLimiter(rate)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	n := 0
	for {
		if _, err := l.Wait(ctx); err != nil {
			break
		}
		n++
	}
	bound := int(rate*time.Since(start).Seconds()) + rate + 1
	if n > bound || n < rate {
		t.Errorf("admitted %d, want between %d and %d", n, rate, bound)
	}
}

type fakeSender struct {
	calls atomic.Int64
	err   atomic.Pointer[error]
}

func (f *fakeSender) Send(context.Context, *channels.Message) (channels.Receipt, error) {
	f.calls.Add(1)
	if e := f.err.Load(); e != nil {
		return channels.Receipt{}, *e
	}
	return channels.Receipt{ProviderMessageID: "ok"}, nil
}
func (f *fakeSender) Close() error { return nil }
func (f *fakeSender) fail(err error) {
	if err == nil {
		f.err.Store(nil)
		return
	}
	f.err.Store(&err)
}

func TestBreaker(t *testing.T) {
	var mu sync.Mutex
	var changes []string
	b, err := protect.NewBreaker(protect.BreakerConfig{Name: "twilio", Failures: 3, OpenFor: 100 * time.Millisecond,
		OnState: func(from, to protect.State) {
			mu.Lock()
			changes = append(changes, from.String()+">"+to.String())
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeSender{}
	s := &protect.Sender{Next: fs, Breaker: b}
	ctx := context.Background()
	send := func() error { _, err := s.Send(ctx, &channels.Message{}); return err }

	// Permanent, per-recipient failures never open it.
	fs.fail(failure.Perm(failure.ReasonInvalidAddress, errors.New("21211")))
	for range 10 {
		if err := send(); failure.IsPaused(err) {
			t.Fatal("permanent failures opened the breaker")
		}
	}
	// Consecutive retryable failures do.
	fs.fail(failure.Retry(failure.ReasonUnavailable, errors.New("503")))
	for range 3 {
		_ = send()
	}
	if b.State() != protect.Open {
		t.Fatalf("state after 3 retryable failures = %v", b.State())
	}
	calls := fs.calls.Load()
	if err := send(); !failure.IsPaused(err) || failure.ClassOf(err) != failure.Retryable {
		t.Fatalf("send while open = %v, want a retryable pause", err)
	}
	if fs.calls.Load() != calls {
		t.Fatal("provider called while the breaker was open")
	}

	// The gate holds until OpenFor passes; then the probe fails and it
	// opens again; the next probe succeeds and it closes.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if err := b.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("gate while open = %v, want it to block", err)
	}
	cancel()
	if err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := send(); failure.IsPaused(err) {
		t.Fatalf("probe was not let through: %v", err)
	}
	if b.State() != protect.Open {
		t.Fatalf("failed probe left state %v", b.State())
	}
	fs.fail(nil)
	if err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := send(); err != nil {
		t.Fatalf("probe after recovery: %v", err)
	}
	if b.State() != protect.Closed {
		t.Fatalf("state after a good probe = %v", b.State())
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	if len(changes) != len(want) {
		t.Fatalf("state changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("state changes %v, want %v", changes, want)
		}
	}
}

func TestBreakerConfig(t *testing.T) {
	if _, err := protect.NewBreaker(protect.BreakerConfig{Failures: 0, OpenFor: time.Second}); err == nil {
		t.Error("zero failures accepted")
	}
	if _, err := protect.NewBreaker(protect.BreakerConfig{Failures: 1}); err == nil {
		t.Error("zero open period accepted")
	}
}
