package main

import (
	"strconv"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/gymhq/herald/caps"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/topics"
)

// setupScheduling makes the scheduler's index and the frequency-cap
// counter: in Redis, or in process when the fleet runs without Redis
// (tests that give it a store).
func (f *fleet) setupScheduling(rc redis.UniversalClient) {
	if rc != nil {
		f.schedIndex = schedule.NewRedis(rc, schedule.RedisOptions{})
		f.caps = caps.NewRedis(rc, "")
		return
	}
	f.schedIndex = schedule.NewMemory()
	f.caps = caps.NewMemory()
}

// scheduleSpec is the schedule topic as herald creates it: retention long
// enough for everything it holds (HERALD_SCHEDULE_RETENTION).
func scheduleSpec(cfg *config.Config) kafkarun.TopicSpec {
	return kafkarun.TopicSpec{Name: topics.Schedule, Partitions: cfg.TopicPartitions, Replication: cfg.TopicReplication,
		Config: map[string]string{"retention.ms": strconv.FormatInt(cfg.Schedule.Retention.Milliseconds(), 10)}}
}

// newScheduler is the dispatcher role's scheduler: it indexes the
// schedule topic and fires what is due; conn reads the topic to rebuild
// the index.
func (f *fleet) newScheduler(pub queue.Publisher, conn *kafkarun.Connection, owner string) (*schedule.Scheduler, error) {
	scan := kafkarun.ScanConfig{Brokers: f.cfg.KafkaBrokers}
	if conn != nil {
		scan.Dialer, scan.Transport = conn.Dialer, conn.Transport
	}
	src := kafkarun.TopicSource{Config: scan, Topic: topics.Schedule}
	return schedule.New(schedule.Config{
		Index: f.schedIndex, Publisher: pub, Metrics: f.metrics, Logger: f.logger().With(zap.String("role", "scheduler")),
		Retention: f.cfg.Schedule.Retention, Tick: f.cfg.Schedule.Tick, Owner: owner,
		Partitions: src.Partitions, Scan: src.Read,
	})
}

// capOf is the frequency cap of n's category on n's channel, and its
// policy (pipeline.NewWait), in the serving template tree.
func (f *fleet) capOf(n *notification.Notification) (caps.Limit, string, bool) {
	cat := f.templates.Current().Category(n.Category)
	if cat == nil {
		return caps.Limit{}, "", false
	}
	c := cat.Cap(n.Channel)
	if c == nil {
		return caps.Limit{}, "", false
	}
	return caps.Limit{Max: c.Max, Per: c.Per}, c.Policy, true
}
