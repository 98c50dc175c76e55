package kafkarun

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
	"go.uber.org/zap"
)

// partitionCounts returns how many partitions each of topics has, 0 for a
// topic that does not exist, from the transport's metadata cache: the
// consumer's transport refreshes its topics' metadata every MetadataTTL, so
// a read costs no request of its own. Any other error of a topic's is the
// read's error: a topic that is there but not readable now (being created,
// not authorized) is not taken for a change.
func partitionCounts(ctx context.Context, rt kafka.RoundTripper, addr net.Addr, topics []string) (map[string]int, error) {
	res, err := rt.RoundTrip(ctx, addr, &metadataAPI.Request{TopicNames: topics})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	counts := make(map[string]int, len(topics))
	for _, t := range topics {
		counts[t] = 0
	}
	for _, t := range res.(*metadataAPI.Response).Topics {
		if _, ok := counts[t.Name]; !ok {
			continue
		}
		switch kafka.Error(t.ErrorCode) {
		case 0:
			counts[t.Name] = len(t.Partitions)
		case kafka.UnknownTopicOrPartition:
		default:
			return nil, fmt.Errorf("metadata of topic %s: %w", t.Name, kafka.Error(t.ErrorCode))
		}
	}
	return counts, nil
}

// partitionCounts is partitionCounts of the consumer's topics.
func (c *Consumer) partitionCounts(ctx context.Context) (map[string]int, error) {
	return partitionCounts(ctx, c.transport, kafka.TCP(c.cfg.Brokers...), c.cfg.Topics)
}

// watchPartitions watches the group's topics and, once they have changed,
// leaves the group to join it again (resubscribe, then runGroup): partitions
// added (docs/operations.md, "add partitions"), a topic created after the
// group formed, or one deleted. Joining again as a new member is what makes
// the coordinator rebalance the whole group: a member that only rejoins
// with unchanged metadata is handed the same generation back unless it is
// the group's leader, and kafka-go does not say which member leads. Without
// it, records on new partitions waited for the next rebalance for some
// other reason, which may be days away.
//
// It checks at once, when the generation starts (another member's change
// is what ends most generations, and its subscription must follow before
// the group can be assigned anything: the leader assigns nothing while one
// subscribed topic is missing), and then every PartitionWatchInterval.
// After resubscribe it waits for the generation to end rather than
// returning: a generation also ends when a function it started returns,
// and kafka-go then raced a join of the old subscription against the close
// (an outside tester's runs: the whole group stalled for the rebalance
// timeout).
//
// base is read when the generation starts; a change between the leader's
// assignment and that read is seen only at the next change (kafka-go's own
// watcher has the same window), as is a topic deleted and created again
// with as many partitions between two checks. A failed read changes
// nothing: losing the cluster is the heartbeat's to notice, and a watcher
// that left the group on every metadata error would churn it during a
// broker restart. kafka-go's WatchPartitionChanges does both of those, and
// ends a generation at once when a topic is missing, so it is not used.
func (c *Consumer) watchPartitions(ctx context.Context, base map[string]int, subscribed []string, resubscribe func()) {
	t := time.NewTicker(c.cfg.PartitionWatchInterval)
	defer t.Stop()
	now := base
	for {
		if now != nil {
			if base == nil {
				base = now // the read at the start failed
			}
			if want := subscribable(c.cfg.Topics, now); !slices.Equal(want, subscribed) {
				c.log.Info("subscribed topics changed; joining the group again with them",
					zap.Strings("topics_before", subscribed), zap.Strings("topics_now", want), zap.Any("partitions", now))
				break
			}
			if !maps.Equal(base, now) {
				c.log.Info("topic partitions changed; joining the group again to rebalance onto them",
					zap.Any("partitions_before", base), zap.Any("partitions_now", now))
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, _ = c.partitionCounts(ctx) // nil when it fails: nothing changes
	}
	resubscribe()
	<-ctx.Done()
}
