package kafkarun

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// PartitionLag is how far one consumer group is behind on one partition:
// the records between its committed offset and the partition's high
// watermark.
type PartitionLag struct {
	Group     string
	Topic     string
	Partition int
	// Committed is the group's committed offset, -1 when it has none.
	Committed int64
	// End is the high watermark, the offset the next record will get.
	End int64
	// Lag is End minus where the group resumes: its committed offset, or
	// the oldest retained record when it has committed nothing (herald
	// starts from the earliest offset) or its offset was deleted by
	// retention.
	Lag int64
}

// LagConfig configures a LagPoller.
type LagConfig struct {
	Brokers []string
	// Transport carries TLS/SASL (the fleet's connection); nil uses
	// kafka-go's shared default, which also caches topic metadata.
	Transport *kafka.Transport
	// Groups maps each consumer group to the topics it consumes.
	Groups map[string][]string
	// Interval between polls; default 15s, the usual Prometheus scrape
	// interval, so every scrape sees a recent value.
	Interval time.Duration
	// Report receives every partition's lag after each successful poll of
	// its group. Required.
	Report func(PartitionLag)
	// Forget, when set, receives each partition a group's previous
	// successful poll reported and its latest one does not (its topic was
	// deleted, or created again with fewer partitions), with only Group,
	// Topic and Partition set: whatever Report fed for it is stale.
	Forget func(PartitionLag)
	Logger *zap.Logger
}

// LagPoller computes consumer lag from the brokers' own records, committed
// offsets (OffsetFetch) against log start and high watermarks
// (ListOffsets), not from what this process has fetched. It therefore sees
// the whole group, including partitions no live member holds, which is what
// an operator asking "is the group keeping up" needs.
type LagPoller struct {
	cfg    LagConfig
	client *kafka.Client
	// reported is each group's partitions in its last successful poll
	// (Poll's goroutine only).
	reported map[string]map[lagKey]bool
}

type lagKey struct {
	topic     string
	partition int
}

// NewLagPoller validates cfg.
func NewLagPoller(cfg LagConfig) (*LagPoller, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("kafkarun: lag poller: no brokers")
	case len(cfg.Groups) == 0:
		return nil, errors.New("kafkarun: lag poller: no groups")
	case cfg.Report == nil:
		return nil, errors.New("kafkarun: lag poller: no Report func")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}
	if cfg.Transport != nil {
		client.Transport = cfg.Transport
	}
	return &LagPoller{cfg: cfg, client: client, reported: map[string]map[lagKey]bool{}}, nil
}

// Run polls every Interval until ctx ends. A failed poll is logged once
// when polling starts failing and once when it recovers; the gauges keep
// their last values meanwhile.
func (p *LagPoller) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	failing := false
	for {
		err := p.Poll(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			p.cfg.Logger.Warn("consumer lag poll failing; lag metrics are stale", zap.Error(err))
		case err == nil && failing:
			p.cfg.Logger.Info("consumer lag poll recovered")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll measures every group's lag once and reports it.
func (p *LagPoller) Poll(ctx context.Context) error {
	var errs []error
	for group, topics := range p.cfg.Groups {
		lags, err := p.groupLag(ctx, group, topics)
		if err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", group, err))
			continue
		}
		now := make(map[lagKey]bool, len(lags))
		for _, l := range lags {
			p.cfg.Report(l)
			now[lagKey{l.Topic, l.Partition}] = true
		}
		for k := range p.reported[group] {
			if !now[k] && p.cfg.Forget != nil {
				p.cfg.Forget(PartitionLag{Group: group, Topic: k.topic, Partition: k.partition})
			}
		}
		p.reported[group] = now
	}
	return errors.Join(errs...)
}

func (p *LagPoller) groupLag(ctx context.Context, group string, topics []string) ([]PartitionLag, error) {
	meta, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	parts := map[string][]int{}
	first := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	last := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range meta.Topics {
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			// Not created yet (or deleted): nothing to lag behind. The
			// group's other topics are still measured; the consumer
			// subscribes only to the topics that exist, too.
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, pt := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], pt.ID)
			first.Topics[t.Name] = append(first.Topics[t.Name], kafka.FirstOffsetOf(pt.ID))
			last.Topics[t.Name] = append(last.Topics[t.Name], kafka.LastOffsetOf(pt.ID))
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	committed, err := p.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: parts})
	if err != nil {
		return nil, err
	}
	if errors.Is(committed.Error, kafka.GroupIdNotFound) {
		// A group that has never joined: brokers differ in whether they
		// say so or answer -1 for every partition. Both mean nothing is
		// committed.
		committed.Topics = map[string][]kafka.OffsetFetchPartition{}
		for topic, ps := range parts {
			for _, id := range ps {
				committed.Topics[topic] = append(committed.Topics[topic], kafka.OffsetFetchPartition{Partition: id, CommittedOffset: -1})
			}
		}
	} else if committed.Error != nil {
		return nil, committed.Error
	}
	// Log start and high watermark in two requests: brokers refuse a
	// ListOffsets naming one partition twice.
	starts, err := p.client.ListOffsets(ctx, first)
	if err != nil {
		return nil, err
	}
	ends, err := p.client.ListOffsets(ctx, last)
	if err != nil {
		return nil, err
	}
	type tp struct {
		topic string
		part  int
	}
	start, end := map[tp]int64{}, map[tp]int64{}
	for topic, ps := range starts.Topics {
		for _, o := range ps {
			if o.Error != nil {
				return nil, fmt.Errorf("%s/%d log start: %w", topic, o.Partition, o.Error)
			}
			start[tp{topic, o.Partition}] = o.FirstOffset
		}
	}
	for topic, ps := range ends.Topics {
		for _, o := range ps {
			if o.Error != nil {
				return nil, fmt.Errorf("%s/%d high watermark: %w", topic, o.Partition, o.Error)
			}
			end[tp{topic, o.Partition}] = o.LastOffset
		}
	}
	var out []PartitionLag
	for topic, ps := range committed.Topics {
		for _, c := range ps {
			if c.Error != nil {
				return nil, fmt.Errorf("%s/%d committed offset: %w", topic, c.Partition, c.Error)
			}
			k := tp{topic, c.Partition}
			e, ok := end[k]
			if !ok {
				continue
			}
			out = append(out, PartitionLag{Group: group, Topic: topic, Partition: c.Partition,
				Committed: c.CommittedOffset, End: e, Lag: lag(c.CommittedOffset, start[k], e)})
		}
	}
	return out, nil
}

// lag is the records a group still has to consume on a partition, given its
// committed offset (-1 for none), the log start and the high watermark.
func lag(committed, start, end int64) int64 {
	from := max(committed, start)
	return max(end-from, 0)
}
