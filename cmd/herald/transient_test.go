package main

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/topics"
)

// failTenPercent makes every provider answer 10% of its requests with a
// transient error in its real shape: SMTP 451 4.3.0 at RCPT, Twilio 503,
// FCM 503 UNAVAILABLE.
func failTenPercent(t testing.TB, env *devEnv) {
	t.Helper()
	if err := env.smtp.FailRatio(0.1, 451, "4.3.0", "Temporary local problem, try again"); err != nil {
		t.Fatal(err)
	}
	env.twilio.FailRatio(0.1, 503, 0)
	env.fcm.FailRatio(0.1, 503, "UNAVAILABLE")
}

// TestTransientErrorsTenPercent: with every provider failing 10% of
// requests transiently, every message still arrives exactly once.
func TestTransientErrorsTenPercent(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet")
	}
	redis := redistest.Start(t)
	env, _ := newTestEnv(t, 3, redis)
	failTenPercent(t, env)
	startFleet(t, env)

	w := newWorkload(t, sim.New(sim.Options{Seed: 17, Members: 60, Prefix: "tr"}), 150)
	w.publish(t, env)
	c := waitDelivered(t, env, w, 75*time.Second)
	smsFailed := env.twilio.Requests() - env.twilio.Accepted()
	pushFailed := env.fcm.SendRequests() - env.fcm.Accepted()
	t.Logf("provider answers that failed: sms %d of %d, push %d of %d (email: 451 at RCPT, same share)",
		smsFailed, env.twilio.Requests(), pushFailed, env.fcm.SendRequests())
	if smsFailed == 0 || pushFailed == 0 {
		t.Errorf("no transient failures were injected")
	}
	assertExactlyOnce(t, "10% transient errors", c)
}

// BenchmarkTransientErrors measures the fleet when every provider fails 10%
// of requests transiently, against an error-free fleet fed the same events
// in the same run. Each iteration publishes one batch to both (in
// alternating order).
//
//	go test -run '^$' -bench TransientErrors -benchtime 3x ./cmd/herald/
//
// ratio is the partitions' throughput with errors / without: the time from
// the first publish until every channel partition has committed its last
// record, i.e. every notification has a durable outcome (sent, or waiting on
// the retry topic). That is what "the partition keeps flowing" means.
// tail_ratio is the same for the last delivery, which includes the retry
// ladder's not-before wait (≈10s) for the few messages that failed all
// their quick attempts: latency for those messages, not lost throughput.
func BenchmarkTransientErrors(b *testing.B) {
	const batch = 1500
	start := func(faulty bool) *devEnv {
		redis := redistest.Start(b)
		env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: 3, RedisURL: redis.URL(), Log: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(env.Close)
		if faulty {
			failTenPercent(b, env)
		}
		startFleet(b, env)
		return env
	}
	clean, faulty := start(false), start(true)
	g := sim.New(sim.Options{Seed: 23, Members: 3000, Prefix: "bt"})
	type totals struct {
		delivered     int
		flowing, tail time.Duration
	}
	var tc, tf totals
	run := func(env *devEnv, w *workload, t *totals) {
		t0 := time.Now()
		w.publish(b, env)
		t.delivered += w.total
		poll.Until(b, 2*time.Minute, "channel partitions committed", func() bool { return channelsCommitted(b, env) })
		t.flowing += time.Since(t0)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := env.outbox.Wait(ctx, t.delivered); err != nil {
			b.Fatalf("delivered %d of %d: %v", env.outbox.Len(), t.delivered, err)
		}
		t.tail += time.Since(t0)
	}
	// Warm up both (connections, group joins, token fetch) outside the
	// measurement.
	warm := newWorkload(b, g, 5)
	run(clean, warm, &tc)
	run(faulty, warm, &tf)
	tc.flowing, tc.tail, tf.flowing, tf.tail = 0, 0, 0, 0

	n := 0
	b.ResetTimer()
	for i := range b.N {
		w := newWorkload(b, g, batch)
		n += w.total
		if i%2 == 0 {
			run(clean, w, &tc)
			run(faulty, w, &tf)
		} else {
			run(faulty, w, &tf)
			run(clean, w, &tc)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/tc.flowing.Seconds(), "clean_msgs/s")
	b.ReportMetric(float64(n)/tf.flowing.Seconds(), "faulty_msgs/s")
	b.ReportMetric(tc.flowing.Seconds()/tf.flowing.Seconds(), "ratio")
	b.ReportMetric(tc.tail.Seconds()/tf.tail.Seconds(), "tail_ratio")
	b.ReportMetric(float64(topicRecords(b, faulty, topics.Retry(notification.Email))+
		topicRecords(b, faulty, topics.Retry(notification.SMS))+topicRecords(b, faulty, topics.Retry(notification.Push))), "retried")
	b.ReportMetric(0, "ns/op")
}

// channelsCommitted reports whether every channel group has committed to
// the end of its channel topic (retry topics aside).
func channelsCommitted(t testing.TB, env *devEnv) bool {
	client := &kafka.Client{Addr: kafka.TCP(env.brokers()...)}
	for _, ch := range notification.Known() {
		topic := topics.Channel(ch)
		ends := endOffsets(t, client, topic, env.cfg.TopicPartitions)
		req := &kafka.OffsetFetchRequest{GroupID: topics.Group(ch), Topics: map[string][]int{topic: nil}}
		for p := range ends {
			req.Topics[topic] = append(req.Topics[topic], p)
		}
		resp, err := client.OffsetFetch(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range resp.Topics[topic] {
			if end := ends[p.Partition]; end > 0 && p.CommittedOffset < end {
				return false
			}
		}
	}
	return true
}
