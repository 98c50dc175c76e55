package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/topics"
)

// notificationSource makes distinct, valid notifications for one channel
// from planned sim events, varying the event id so every one has its own
// idempotency key.
type notificationSource struct {
	base []notification.Notification
}

func newNotificationSource(env *Env, ch notification.Channel) (*notificationSource, error) {
	planned, _, err := plan(env.Templates, events(400, "q"+string(ch)))
	if err != nil {
		return nil, err
	}
	s := &notificationSource{}
	for _, ns := range planned {
		for _, n := range ns {
			if n.Channel == ch {
				s.base = append(s.base, n)
			}
		}
	}
	if len(s.base) == 0 {
		return nil, fmt.Errorf("no %s notifications planned", ch)
	}
	return s, nil
}

func (s *notificationSource) message(topic string, i int) (kafka.Message, error) {
	n := s.base[i%len(s.base)]
	// Every queued notification is for an event and a recipient of its
	// own, as in a real backlog of many members: one recipient's messages
	// are sent in order, one at a time, so a few recipients would measure
	// key ordering rather than the worker.
	n.EventID = n.EventID + "~" + strconv.Itoa(i)
	n.RecipientID = n.RecipientID + "~" + strconv.Itoa(i)
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	n.CreatedAt = time.Now()
	b, err := notification.Encode(&n)
	if err != nil {
		return kafka.Message{}, err
	}
	return kafka.Message{Topic: topic, Key: []byte(n.RecipientID), Value: b}, nil // keyed like the dispatcher
}

// queue preloads count notifications of ch onto topic in chunks, so the
// parent never holds them all at once.
func (s *notificationSource) queue(ctx context.Context, brokers []string, topic string, from, count int) error {
	const chunk = 20000
	for i := from; i < from+count; i += chunk {
		end := min(i+chunk, from+count)
		msgs := make([]kafka.Message, 0, end-i)
		for j := i; j < end; j++ {
			m, err := s.message(topic, j)
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		if err := preload(ctx, brokers, msgs); err != nil {
			return err
		}
	}
	return nil
}

const (
	slowLatency      = 50 * time.Millisecond
	slowPartitions   = 6
	slowPerChannel   = 20000
	slowBaselinePerC = 40 // per channel; at 50 ms each the loops manage 20/s
	backlogCount     = 1000000
	// backlogDrain is how many of the queued notifications the worker
	// drains before it is stopped: enough for memory to reach its plateau
	// (VmRSS is sampled along the way to show it), without spending
	// minutes of `make bench` on the rest at the same rate.
	backlogDrain    = 250000
	backlogBaseline = 2000
)

func runSlowProvider(ctx context.Context, env *Env) (Result, error) {
	per := env.Opts.scaled(slowPerChannel)
	bper := min(per, env.Opts.scaled(slowBaselinePerC))
	kc, err := env.cluster()
	if err != nil {
		return Result{}, err
	}
	defer kc.Close()
	brokers := kc.Brokers()
	var owned, naive []string
	owned = append(owned, topics.Owned()...)
	for _, ch := range allChannels() {
		naive = append(naive, naiveTopic(ch))
	}
	if err := createTopics(ctx, brokers, slowPartitions, append(owned, naive...)...); err != nil {
		return Result{}, err
	}
	for _, ch := range allChannels() {
		src, err := newNotificationSource(env, ch)
		if err != nil {
			return Result{}, err
		}
		if err := src.queue(ctx, brokers, topics.Channel(ch), 0, per); err != nil {
			return Result{}, err
		}
		if err := src.queue(ctx, brokers, naiveTopic(ch), 0, bper); err != nil {
			return Result{}, err
		}
	}
	if err := env.Redis.FlushAll(); err != nil {
		return Result{}, err
	}
	total := per * len(allChannels())
	var chs []string
	for _, ch := range allChannels() {
		chs = append(chs, string(ch))
	}
	rep, err := env.runWorkerProcess(ctx, childSpec{
		Brokers: brokers, RedisURL: env.Redis.URL(), Channels: chs,
		SendLatencyMS: float64(slowLatency) / float64(time.Millisecond), Partitions: slowPartitions, Expect: total,
	})
	if err != nil {
		return Result{}, err
	}

	// Baseline: one naive loop per channel, one message at a time.
	bExpected := bper * len(allChannels())
	bElapsed, err := queuedBaseline(ctx, env, pipelineConfig{brokers: brokers, channels: allChannels(), partitions: slowPartitions, sendLatency: slowLatency}, bExpected)
	if err != nil {
		return Result{}, err
	}
	bSecs := bElapsed * float64(total) / float64(bExpected)
	rate := float64(rep.Delivered) / rep.Seconds
	return Result{
		Messages: total, Seconds: round(rep.Seconds, 2), BaselineSeconds: round(bSecs, 1),
		RatioVsBaseline: round(bSecs/rep.Seconds, 1),
		NotificationsPS: f64(round(rate, 0)), PeakRSSMB: f64(round(rep.PeakRSSMB, 1)),
		CPUMicrosPerMessage: f64(round(rep.CPUSeconds*1e6/float64(rep.Delivered), 0)),
		BaselineMessages:    bExpected,
		BaselineNote: fmt.Sprintf("one naive loop per channel handled %d notifications in %.2f s; extrapolated per notification",
			bExpected, bElapsed),
		Target: "≥ 5,000 notifications/s per process",
		Met:    rate >= 5000,
		Note: fmt.Sprintf("one worker process running the %s workers (HERALD_MAX_IN_FLIGHT default 256 each) over %d partitions per topic, %d notifications queued per channel; every send takes %v; each notification for a recipient of its own",
			strings.Join(chs, ", "), slowPartitions, per, slowLatency),
	}, nil
}

func runBacklog(ctx context.Context, env *Env) (Result, error) {
	n := env.Opts.scaled(backlogCount)
	drain := min(n, env.Opts.scaled(backlogDrain))
	bn := min(n, env.Opts.scaled(backlogBaseline))
	kc, err := env.cluster()
	if err != nil {
		return Result{}, err
	}
	defer kc.Close()
	brokers := kc.Brokers()
	ch := notification.Email
	if err := createTopics(ctx, brokers, slowPartitions, append(topics.Owned(), naiveTopic(ch))...); err != nil {
		return Result{}, err
	}
	src, err := newNotificationSource(env, ch)
	if err != nil {
		return Result{}, err
	}
	t0 := time.Now()
	if err := src.queue(ctx, brokers, topics.Channel(ch), 0, n); err != nil {
		return Result{}, err
	}
	if err := src.queue(ctx, brokers, naiveTopic(ch), 0, bn); err != nil {
		return Result{}, err
	}
	env.Opts.logf("bench: backlog: queued %d notifications in %v", n, time.Since(t0).Round(time.Millisecond))
	if err := env.Redis.FlushAll(); err != nil {
		return Result{}, err
	}
	rep, err := env.runWorkerProcess(ctx, childSpec{
		Brokers: brokers, RedisURL: env.Redis.URL(), Channels: []string{string(ch)},
		Partitions: slowPartitions, Expect: drain, Checkpoints: 5,
	})
	if err != nil {
		return Result{}, err
	}

	bElapsed, err := queuedBaseline(ctx, env, pipelineConfig{brokers: brokers, channels: []notification.Channel{ch}, partitions: slowPartitions}, bn)
	if err != nil {
		return Result{}, err
	}
	bSecs := bElapsed * float64(drain) / float64(bn)
	var samples []string
	for _, v := range rep.RSSMB {
		samples = append(samples, fmt.Sprintf("%.0f", v))
	}
	return Result{
		Messages: drain, Seconds: round(rep.Seconds, 2), BaselineSeconds: round(bSecs, 1),
		RatioVsBaseline: round(bSecs/rep.Seconds, 1),
		NotificationsPS: f64(round(float64(rep.Delivered)/rep.Seconds, 0)), PeakRSSMB: f64(round(rep.PeakRSSMB, 1)),
		CPUMicrosPerMessage: f64(round(rep.CPUSeconds*1e6/float64(rep.Delivered), 0)),
		BaselineMessages:    bn,
		BaselineNote: fmt.Sprintf("a naive email loop drained %d of the same kind of notification in %.2f s; extrapolated per notification (ratio is drain time)",
			bn, bElapsed),
		Target: "peak RSS ≤ 200 MB",
		Met:    rep.PeakRSSMB <= 200,
		Note: fmt.Sprintf("%d notifications queued over %d partitions; one email worker process (zero-latency sink, real Redis keys, default HERALD_MAX_IN_FLIGHT) drained the first %d of them and was stopped; "+
			"peak RSS is VmHWM of that process alone (Kafka lives in its own process); VmRSS at each fifth of the drain: %s MB",
			n, slowPartitions, drain, strings.Join(samples, ", ")),
	}, nil
}

// queuedBaseline runs the naive loops of cfg over already queued
// notifications until expected have been delivered, and returns the
// seconds from their first message to the last delivery.
func queuedBaseline(ctx context.Context, env *Env, cfg pipelineConfig, expected int) (float64, error) {
	bt := newTracker()
	bt.anyID = true
	bt.expected = expected
	np, err := startNaive(ctx, env, cfg, "", bt)
	if err != nil {
		return 0, err
	}
	werr := bt.wait(ctx, 2*time.Minute)
	if err := np.close(); err != nil {
		return 0, fmt.Errorf("baseline: %w", err)
	}
	if werr != nil {
		return 0, fmt.Errorf("baseline: %w", werr)
	}
	return bt.last.Sub(np.first.time()).Seconds(), nil
}
