package main

import (
	"context"
	"strconv"

	"go.uber.org/zap"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
)

// The fleet's consumer liveness (/healthz) is kafkarun.Liveness; what
// follows feeds it from this process's configuration and lag poller.

// track wraps a group's handler so that /healthz sees its calls and waits.
func (f *fleet) track(group string, topics []string, h queue.Handler) queue.Handler {
	f.live.DefaultWindow(kafkarun.StallWindow(f.cfg.SendTimeout))
	return f.live.Track(group, topics, h)
}

// watchLag polls the consumer lag of every group this process runs until
// ctx ends, exporting herald_consumer_lag and feeding liveness and
// herald_partition_stalled_seconds. It talks to
// the brokers through conn, the fleet's TLS/SASL connection.
func (f *fleet) watchLag(ctx context.Context, conn *kafkarun.Connection) {
	gauge, err := obs.RegisterConsumerLag(f.metrics.Registry)
	if err != nil {
		f.log.Error("consumer lag metric", zap.Error(err))
		return
	}
	lp, err := kafkarun.NewLagPoller(kafkarun.LagConfig{
		Brokers: f.cfg.KafkaBrokers, Transport: conn.Transport, Groups: f.live.GroupsAndTopics(), Interval: f.live.LagEvery, Logger: f.log,
		Report: func(l kafkarun.PartitionLag) {
			gauge.WithLabelValues(l.Group, l.Topic, strconv.Itoa(l.Partition)).Set(float64(l.Lag))
			f.metrics.Stalls.Lag(l.Group, l.Topic, l.Partition, l.Committed, l.Lag)
			f.live.ReportLag(l)
		},
		Forget: func(l kafkarun.PartitionLag) {
			gauge.DeleteLabelValues(l.Group, l.Topic, strconv.Itoa(l.Partition))
			f.metrics.Stalls.Forget(l.Group, l.Topic, l.Partition)
			f.live.ForgetLag(l)
		},
	})
	if err != nil {
		f.log.Error("consumer lag poller", zap.Error(err))
		return
	}
	lp.Run(ctx)
}
