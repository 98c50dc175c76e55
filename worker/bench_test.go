package worker_test

import (
	"context"
	"io"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/rpipe"
	"github.com/gymhq/herald/internal/scalemodel"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/worker"
)

// BenchmarkHandleOnRedis is a channel worker's Handle on a real Redis, from
// many goroutines at once: claim, suppression lookup, render, send (a no-op
// provider), sent mark. Each op is one notification. "separate" gives the
// idempotency store and the suppression list pipelines of their own, as
// herald did before internal/rpipe; "shared" is herald run's wiring. Besides
// ns/op it reports Redis pipelines per notification and the CPU of this
// process and of redis-server per notification.
func BenchmarkHandleOnRedis(b *testing.B) {
	srv := redistest.Start(b)
	for _, bc := range []struct {
		name  string
		setup func(redis.UniversalClient) (dedupe.Store, suppress.Store, func() uint64, func())
	}{
		{"separate", func(c redis.UniversalClient) (dedupe.Store, suppress.Store, func() uint64, func()) {
			store, list := dedupe.NewRedis(c, dedupe.Options{}), suppress.NewRedis(c, "", nil)
			return store, list, func() uint64 { return store.RoundTrips() + list.RoundTrips() }, func() { list.Close(); store.Close() }
		}},
		{"shared", func(c redis.UniversalClient) (dedupe.Store, suppress.Store, func() uint64, func()) {
			pipes := rpipe.New(c, 0)
			store, list := dedupe.NewRedis(c, dedupe.Options{Pipes: pipes}), suppress.NewRedisOn(pipes, "", nil)
			return store, list, pipes.RoundTrips, func() { list.Close(); store.Close(); pipes.Close() }
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if err := srv.FlushAll(); err != nil {
				b.Fatal(err)
			}
			client := redis.NewClient(srv.Options())
			defer client.Close()
			store, list, roundTrips, done := bc.setup(client)
			defer done()
			w := redisWorker(b, &sender{}, store, list)
			ctx := context.Background()
			var next atomic.Uint64
			handle := func() {
				n := note(0)
				n.EventID = "evt_" + strconv.FormatUint(next.Add(1), 10)
				n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
				v, err := notification.Encode(n)
				if err != nil {
					b.Fatal(err)
				}
				if err := w.Handle(ctx, &queue.Message{Topic: "herald.sms.v1", Value: v}); err != nil {
					b.Error(err)
				}
			}
			handle() // loads the scripts
			trips, cpu, redisCPU := roundTrips(), processCPU(), serverCPU(b, client)
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					handle()
				}
			})
			b.StopTimer()
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
			b.ReportMetric(float64(roundTrips()-trips)/float64(b.N), "pipelines/msg")
			b.ReportMetric(per(processCPU()-cpu), "cpu-µs/msg")
			b.ReportMetric((serverCPU(b, client)-redisCPU)*1e6/float64(b.N), "redis-cpu-µs/msg")
		})
	}
}

// processCPU is this process's user and system CPU so far.
func processCPU() time.Duration {
	var u syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// serverCPU is redis-server's user and system CPU so far, in seconds.
func serverCPU(b *testing.B, c *redis.Client) float64 {
	s, err := scalemodel.ReadRedisStats(context.Background(), c)
	if err != nil {
		b.Fatal(err)
	}
	return s.CPUSeconds
}

// BenchmarkHandle is a channel worker's Handle with in-memory stores, a
// no-op renderer and provider and the process logger (obs.NewLoggerTo)
// writing to io.Discard: the
// worker's own work per notification (decode, claim, suppression lookup,
// send loop, sent mark, metrics, outcome line), without Redis or
// templates. Each op is one notification, handled one after another.
func BenchmarkHandle(b *testing.B) {
	log, err := obs.NewLoggerTo("info", "json", io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	metrics := obs.NewMetrics()
	fresh := func() *worker.Worker {
		w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: &sender{}, Renderer: renderer{},
			Store: dedupe.NewMemory(dedupe.Options{}), Publisher: &publisher{}, Suppressions: suppress.NewMemory(nil),
			Owner: "w1", Lease: 30 * time.Second, SendTimeout: time.Second, MaxAttempts: 3, Metrics: metrics, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		return w
	}
	values := make([][]byte, 4096)
	for i := range values {
		n := note(0)
		n.EventID = "evt_" + strconv.Itoa(i)
		n.Data = notification.DataOf(map[string]string{"class_name": "Spin", "class_starts_at": "2026-12-07T07:00:00Z", "location_name": "Shoreditch",
			"recipient_name": "Ada", "booking_id": "bkg_" + strconv.Itoa(i)})
		n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
		v, err := notification.Encode(n)
		if err != nil {
			b.Fatal(err)
		}
		values[i] = v
	}
	ctx := context.Background()
	w := fresh()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(values) == 0 && i > 0 {
			b.StopTimer()
			w = fresh() // a new store: the same notifications are not duplicates
			b.StartTimer()
		}
		if err := w.Handle(ctx, &queue.Message{Topic: "herald.sms.v1", Value: values[i%len(values)]}); err != nil {
			b.Fatal(err)
		}
	}
}
