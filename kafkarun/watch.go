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
// topic that does not exist (or whose metadata carries an error), from the
// transport's metadata cache: the consumer's transport refreshes its topics'
// metadata every MetadataTTL, so a read costs no request of its own.
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
		if _, ok := counts[t.Name]; ok && t.ErrorCode == 0 {
			counts[t.Name] = len(t.Partitions)
		}
	}
	return counts, nil
}

// watchPartitions returns, which ends the generation it runs in (kafka-go
// ends a generation when any function it started returns), once the
// group's topics have a different partition count than base: partitions
// added (docs/operations.md, "add partitions"), a topic created after the
// group formed, or one deleted. The member then joins again, which makes
// the coordinator rebalance the whole group onto the topics as they are.
// Without it, records on new partitions waited for the next rebalance for
// some other reason, which may be days away. When the configured topics
// that exist are no longer subscribed (a missing one was created, or one
// was deleted), it calls resubscribe first, which leaves the group to join
// it again with them (runGroup).
//
// base is read when the generation starts; a change between the leader's
// assignment and that read is seen only at the next change (kafka-go's own
// watcher has the same window). A failed read changes nothing: losing the
// cluster is the heartbeat's to notice, and a watcher that ended the
// generation on every metadata error would churn the group during a broker
// restart. kafka-go's WatchPartitionChanges does both of those, and ends a
// generation at once when a topic is missing, so it is not used.
func (c *Consumer) watchPartitions(ctx context.Context, base map[string]int, subscribed []string, resubscribe func()) {
	t := time.NewTicker(c.cfg.PartitionWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := partitionCounts(ctx, c.transport, kafka.TCP(c.cfg.Brokers...), c.cfg.Topics)
		if err != nil {
			continue
		}
		if base == nil {
			base = now // the read at the start failed
		}
		if want := subscribable(c.cfg.Topics, now); !slices.Equal(want, subscribed) {
			c.log.Info("subscribed topics changed; joining the group again with them",
				zap.Strings("topics_before", subscribed), zap.Strings("topics_now", want), zap.Any("partitions", now))
			resubscribe()
			return
		}
		if !maps.Equal(base, now) {
			c.log.Info("topic partitions changed; joining the group again to rebalance onto them",
				zap.Any("partitions_before", base), zap.Any("partitions_now", now))
			return
		}
	}
}
