package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// Confluent Parallel Consumer's published workload: 10,000 messages on one
// partition, 1,000 keys, processing uniform 0–5 ms, concurrency 100.
const (
	anchorMessages    = 10000
	anchorKeys        = 1000
	anchorMaxLatency  = 5 * time.Millisecond
	anchorConcurrency = 100
	// anchorBaselineSubset is how many of the same messages the one-at-a-time
	// baseline handles; its time is extrapolated per message (at ~2.5 ms plus
	// a commit round trip each, the full 10,000 would take half a minute).
	anchorBaselineSubset = 1000
)

func runAnchor(ctx context.Context, env *Env) (Result, error) {
	n := env.Opts.scaled(anchorMessages)
	subset := min(n, env.Opts.scaled(anchorBaselineSubset))
	kc, err := env.cluster()
	if err != nil {
		return Result{}, err
	}
	defer kc.Close()
	brokers := kc.Brokers()
	const topic, naiveTopic = "bench.anchor", "bench.anchor.naive"
	if err := createTopics(ctx, brokers, 1, topic, naiveTopic); err != nil {
		return Result{}, err
	}

	// Each message's processing time is fixed by its index, so herald and
	// the baseline sleep exactly the same amounts.
	rng := rand.New(rand.NewPCG(42, 3))
	latency := make([]time.Duration, n)
	var sum time.Duration
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		latency[i] = time.Duration(rng.Int64N(int64(anchorMaxLatency)))
		sum += latency[i]
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, uint64(i))
		msgs[i] = kafka.Message{Topic: topic, Key: []byte("key-" + strconv.Itoa(rng.IntN(anchorKeys))), Value: v}
	}
	naive := make([]kafka.Message, subset)
	for i := range naive {
		naive[i] = msgs[i]
		naive[i].Topic = naiveTopic
	}
	if err := preload(ctx, brokers, append(msgs, naive...)); err != nil {
		return Result{}, err
	}
	process := func(v []byte) time.Duration { return latency[binary.BigEndian.Uint64(v)] }

	// herald: kafkarun with key-ordered concurrency 100.
	var handled atomic.Int64
	done := make(chan time.Time, 1)
	var first firstCall
	h := first.wrap(func(ctx context.Context, m *queue.Message) error {
		time.Sleep(process(m.Value))
		if handled.Add(1) == int64(n) {
			done <- time.Now()
		}
		return nil
	})
	cpu0, icpu0 := cpuTime(), kc.cpu()
	c, err := startConsumer(kafkarun.ConsumerConfig{
		Brokers: brokers, GroupID: "bench-anchor", Topics: []string{topic}, MaxInFlight: anchorConcurrency,
	}, h)
	if err != nil {
		return Result{}, err
	}
	var end time.Time
	select {
	case end = <-done:
	case <-ctx.Done():
		c.Stop()
		return Result{}, ctx.Err()
	case <-time.After(2 * time.Minute):
		c.Stop()
		return Result{}, fmt.Errorf("herald handled %d of %d in 2 minutes", handled.Load(), n)
	}
	if err := c.Stop(); err != nil {
		return Result{}, err
	}
	cpu, icpu := cpuTime()-cpu0, kc.cpu()-icpu0
	secs := end.Sub(first.time()).Seconds()
	got, err := committed(ctx, brokers, "bench-anchor", topic, 1)
	if err != nil {
		return Result{}, fmt.Errorf("read committed offset: %w", err)
	}
	if got != int64(n) {
		return Result{}, fmt.Errorf("herald committed %d of %d after draining", got, n)
	}

	// Baseline: FetchMessage → handle → CommitMessages, one at a time.
	r := naiveReader(brokers, "bench-anchor-naive", naiveTopic)
	defer r.Close()
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	bElapsed, err := naiveLoop(bctx, r, subset, func(_ context.Context, m *kafka.Message) error {
		time.Sleep(process(m.Value))
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("baseline: %w", err)
	}
	bSecs := bElapsed.Seconds() * float64(n) / float64(subset)

	floor := sum.Seconds() / anchorConcurrency
	eff := floor / secs
	ratio := bSecs / secs
	res := Result{
		Messages: n, Seconds: round(secs, 3),
		BaselineSeconds: round(bSecs, 2), RatioVsBaseline: round(ratio, 1),
		FloorSeconds: f64(round(floor, 3)), Efficiency: f64(round(eff, 2)),
		NotificationsPS:     f64(round(float64(n)/secs, 0)),
		CPUMicrosPerMessage: f64(round(cpu.Seconds()*1e6/float64(n), 1)),
		BaselineMessages:    subset,
		Target:              "efficiency ≥ 0.7 and ≥ 50× baseline (Parallel Consumer: 2.06 s)",
		Met:                 eff >= 0.7 && ratio >= 50,
		Note: fmt.Sprintf("timed from the first message handled to the last; all %d offsets committed after the drain; %s; CPU per message is the bench process's from the consumer's start to its drained stop (kafkarun and the sleeping handlers)",
			n, infraWords(env, icpu, n)),
	}
	if subset < n {
		res.BaselineNote = fmt.Sprintf("one-at-a-time loop ran the first %d of the same messages in %.2f s; extrapolated per message", subset, bElapsed.Seconds())
	}
	return res, nil
}
