package kafkarun_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// BenchmarkConsume is the consumer runtime's own cost per record: 50,000
// records of 1,000 keys over 6 partitions, queued before the consumer
// joins, handled by a handler that does nothing. Each iteration is a new
// group reading the topic from the start; it is timed from its first
// record handled to its last (the join is not), and reports per record
// the process's CPU (the in-process broker's serving of fetches
// included, the same for any build), the allocations and their bytes.
// ns/op is the wall time per record.
func BenchmarkConsume(b *testing.B) {
	const records, keys, partitions = 50_000, 1_000, 6
	c := kafkatest.Start(b)
	ctx := context.Background()
	if err := kafkarun.EnsureTopics(ctx, c.Brokers(), nil, []kafkarun.TopicSpec{{Name: "bench", Partitions: partitions, Replication: 1}}); err != nil {
		b.Fatal(err)
	}
	p := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: c.Brokers()})
	defer p.Close()
	value := make([]byte, 400) // about a notification's record
	for start := 0; start < records; start += 1000 {
		msgs := make([]queue.Message, 1000)
		for i := range msgs {
			msgs[i] = queue.Message{Topic: "bench", Key: []byte("member-" + strconv.Itoa((start+i)%keys)), Value: value}
		}
		if err := p.Publish(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
	}

	var wall, cpu time.Duration
	var mallocs, bytes uint64
	b.ResetTimer()
	for i := range b.N {
		var handled atomic.Int64
		var cpu0 time.Duration
		var ms0 runtime.MemStats
		var t0 time.Time
		first, done := make(chan struct{}), make(chan struct{})
		h := func(context.Context, *queue.Message) error {
			switch handled.Add(1) {
			case 1:
				<-first // the window's start is read before any other record runs
			case records:
				close(done)
			}
			return nil
		}
		cons, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "bench-" + strconv.Itoa(i), Topics: []string{"bench"},
			SessionTimeout: 6 * time.Second, RebalanceTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond}, h)
		if err != nil {
			b.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		stopped := make(chan struct{})
		go func() { defer close(stopped); _ = cons.Run(runCtx) }()
		for handled.Load() == 0 {
			time.Sleep(100 * time.Microsecond)
		}
		runtime.ReadMemStats(&ms0)
		cpu0, t0 = cpuTime(), time.Now()
		close(first)
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatalf("%d of %d records handled in a minute", handled.Load(), records)
		}
		wall += time.Since(t0)
		cpu += cpuTime() - cpu0
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		mallocs += ms1.Mallocs - ms0.Mallocs
		bytes += ms1.TotalAlloc - ms0.TotalAlloc
		stop()
		<-stopped
	}
	n := float64(b.N * records)
	b.ReportMetric(float64(wall.Nanoseconds())/n, "ns/op")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/record")
	b.ReportMetric(float64(mallocs)/n, "allocs/record")
	b.ReportMetric(float64(bytes)/n, "B/record")
}

// cpuTime is the process's user and system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
