package kafkarun

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/queue"
)

// ScanConfig says where and how to read for Scan.
type ScanConfig struct {
	Brokers []string
	// Dialer and Transport carry TLS/SASL; nil dials plainly.
	Dialer    *kafka.Dialer
	Transport *kafka.Transport
	// Since is the earliest record time wanted; zero reads from the start
	// of each partition.
	Since time.Time
	// Partitions, when set, are the only partitions read.
	Partitions []int
}

// PartitionRange is the part of one partition a Scan reads: [Start, End).
type PartitionRange struct {
	Partition  int
	Start, End int64
}

// Scan reads topic without a consumer group (it commits nothing and joins
// nothing, so it cannot disturb the fleet): for each partition, every record
// from the first at or after cfg.Since up to the partition's end as it was
// when Scan started. Records written after the start are not read, so a DLQ
// replay never reads what it caused. Partitions are read concurrently; fn is
// called from one goroutine per partition, in offset order within a
// partition, and must be safe for that. An error from fn stops the scan and
// is returned. The ranges read are returned, by partition, so a tool can
// report how far it got.
//
// It is for operator tools (herald trace, herald dlq); it holds one record
// per partition at a time, so its memory does not grow with the topic.
func Scan(parent context.Context, cfg ScanConfig, topic string, fn func(*queue.Message) error) ([]PartitionRange, error) {
	byPartition, err := offsetRanges(parent, cfg, topic)
	if err != nil {
		return nil, err
	}
	ranges := make([]PartitionRange, 0, len(byPartition))
	for p, r := range byPartition {
		if len(cfg.Partitions) > 0 && !slices.Contains(cfg.Partitions, p) {
			continue
		}
		ranges = append(ranges, PartitionRange{Partition: p, Start: r[0], End: r[1]})
	}
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].Partition < ranges[j].Partition })
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, r := range ranges {
		if r.Start >= r.End {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := scanPartition(ctx, cfg, topic, r.Partition, r.Start, r.End, fn); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = parent.Err()
	}
	return ranges, first
}

// offsetRanges returns, per partition, [first offset at or after Since, end).
func offsetRanges(ctx context.Context, cfg ScanConfig, topic string) (map[int][2]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 15 * time.Second}
	if cfg.Transport != nil {
		client.Transport = cfg.Transport
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("kafkarun: scan %s: metadata: %w", topic, err)
	}
	if len(md.Topics) != 1 {
		return nil, fmt.Errorf("kafkarun: scan %s: no metadata", topic)
	}
	if err := md.Topics[0].Error; err != nil {
		return nil, fmt.Errorf("kafkarun: scan %s: %w", topic, err)
	}
	var starts, ends []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		ends = append(ends, kafka.LastOffsetOf(p.ID))
		if cfg.Since.IsZero() {
			starts = append(starts, kafka.FirstOffsetOf(p.ID))
		} else {
			starts = append(starts, kafka.TimeOffsetOf(p.ID, cfg.Since))
		}
	}
	list := func(reqs []kafka.OffsetRequest, pick func(kafka.PartitionOffsets) int64) (map[int]int64, error) {
		resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err != nil {
			return nil, fmt.Errorf("kafkarun: scan %s: list offsets: %w", topic, err)
		}
		out := map[int]int64{}
		for _, po := range resp.Topics[topic] {
			if po.Error != nil {
				return nil, fmt.Errorf("kafkarun: scan %s/%d: list offsets: %w", topic, po.Partition, po.Error)
			}
			out[po.Partition] = pick(po)
		}
		return out, nil
	}
	e, err := list(ends, func(po kafka.PartitionOffsets) int64 { return po.LastOffset })
	if err != nil {
		return nil, err
	}
	s, err := list(starts, func(po kafka.PartitionOffsets) int64 {
		if cfg.Since.IsZero() {
			return po.FirstOffset
		}
		// By time: the first offset whose timestamp is at or after Since,
		// or -1 when every record is older.
		off := int64(-1)
		for o := range po.Offsets {
			off = o
		}
		return off
	})
	if err != nil {
		return nil, err
	}
	ranges := map[int][2]int64{}
	for p, end := range e {
		start, ok := s[p]
		if !ok || start < 0 {
			start = end // nothing at or after Since
		}
		ranges[p] = [2]int64{start, end}
	}
	return ranges, nil
}

func scanPartition(ctx context.Context, cfg ScanConfig, topic string, partition int, start, end int64, fn func(*queue.Message) error) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, Topic: topic, Partition: partition, Dialer: cfg.Dialer,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		return err
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil // another partition failed, or the caller gave up
			}
			return fmt.Errorf("kafkarun: scan %s/%d at %d: %w", topic, partition, start, err)
		}
		if err := fn(toQueue(&m)); err != nil {
			return err
		}
		if m.Offset >= end-1 {
			return nil
		}
	}
}

// PartitionCount returns how many partitions topic has.
func PartitionCount(ctx context.Context, cfg ScanConfig, topic string) (int, error) {
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 15 * time.Second}
	if cfg.Transport != nil {
		client.Transport = cfg.Transport
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("kafkarun: %s: metadata: %w", topic, err)
	}
	if len(md.Topics) != 1 {
		return 0, fmt.Errorf("kafkarun: %s: no metadata", topic)
	}
	if err := md.Topics[0].Error; err != nil {
		return 0, fmt.Errorf("kafkarun: %s: %w", topic, err)
	}
	return len(md.Topics[0].Partitions), nil
}

// TopicSource is one topic read without a group, for a process that
// rebuilds state from it (the scheduler's index): how many partitions it
// has, and the named ones read from their start (Scan).
type TopicSource struct {
	Config ScanConfig
	Topic  string
}

// Partitions is PartitionCount of the topic.
func (s TopicSource) Partitions(ctx context.Context) (int, error) {
	return PartitionCount(ctx, s.Config, s.Topic)
}

// Read scans partitions of the topic from their start to their end now.
func (s TopicSource) Read(ctx context.Context, partitions []int, fn func(*queue.Message) error) error {
	c := s.Config
	c.Partitions = partitions
	_, err := Scan(ctx, c, s.Topic, fn)
	return err
}

func toQueue(m *kafka.Message) *queue.Message {
	q := &queue.Message{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Key: m.Key, Value: m.Value, Time: m.Time,
	}
	if len(m.Headers) > 0 {
		q.Headers = make([]queue.Header, len(m.Headers))
		for i, h := range m.Headers {
			q.Headers[i] = queue.Header{Key: h.Key, Value: h.Value}
		}
	}
	return q
}
