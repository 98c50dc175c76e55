package kafkarun

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/queue"
)

// ScanConfig configures Scan.
type ScanConfig struct {
	Brokers []string
	Topic   string
	// Dialer and Transport carry TLS/SASL; nil connects plainly.
	Dialer    *kafka.Dialer
	Transport *kafka.Transport
}

// PartitionRange is the part of one partition a Scan reads: [Start, End).
type PartitionRange struct {
	Partition  int
	Start, End int64
}

// Scan reads a whole topic without a consumer group, as tools do (`herald
// dlq inspect` and `replay`): each partition from its first retained offset
// up to the end offset it had when Scan started, in offset order, calling fn
// for each record. Records written after the start are not read, so a
// replay never reads what it caused. It returns the ranges it read (so a
// tool can report how far it got) and stops at the first error from fn.
func Scan(ctx context.Context, cfg ScanConfig, fn func(*queue.Message) error) ([]PartitionRange, error) {
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 15 * time.Second}
	if cfg.Transport != nil {
		client.Transport = cfg.Transport
	}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.Topic}})
	if err != nil {
		return nil, fmt.Errorf("kafkarun: metadata of %s: %w", cfg.Topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		var terr error
		if len(meta.Topics) == 1 {
			terr = meta.Topics[0].Error
		}
		return nil, fmt.Errorf("kafkarun: topic %s: %w", cfg.Topic, errors.Join(terr, errors.New("not found")))
	}
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{cfg.Topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("kafkarun: offsets of %s: %w", cfg.Topic, err)
	}
	var ranges []PartitionRange
	for _, po := range offs.Topics[cfg.Topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("kafkarun: offsets of %s/%d: %w", cfg.Topic, po.Partition, po.Error)
		}
		ranges = append(ranges, PartitionRange{Partition: po.Partition, Start: po.FirstOffset, End: po.LastOffset})
	}
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].Partition < ranges[j].Partition })

	for _, pr := range ranges {
		if pr.Start >= pr.End {
			continue
		}
		if err := scanPartition(ctx, cfg, pr, fn); err != nil {
			return ranges, err
		}
	}
	return ranges, nil
}

func scanPartition(ctx context.Context, cfg ScanConfig, pr PartitionRange, fn func(*queue.Message) error) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, Topic: cfg.Topic, Partition: pr.Partition, Dialer: cfg.Dialer,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(pr.Start); err != nil {
		return fmt.Errorf("kafkarun: %s/%d: %w", cfg.Topic, pr.Partition, err)
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("kafkarun: reading %s/%d: %w", cfg.Topic, pr.Partition, err)
		}
		if m.Offset >= pr.End {
			return nil
		}
		if err := fn(toQueue(&m)); err != nil {
			return err
		}
		if m.Offset+1 >= pr.End {
			return nil
		}
	}
}
