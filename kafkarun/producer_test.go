package kafkarun_test

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// values reads every value on topic's partition 0.
func values(t *testing.T, brokers []string, topic string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(0)}}})
	if err != nil {
		t.Fatal(err)
	}
	end := resp.Topics[topic][0].LastOffset
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []string
	for int64(len(out)) < end {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(m.Value))
	}
	return out
}

// A record the broker refuses for its size (message.max.bytes 64 KiB here)
// is a permanent too_large error naming it, and every other record of the
// call — and of concurrent calls whose records shared its batch — is
// written. Before, the refusal was an unclassified (retryable) error for
// every record of the batch, retried for ever.
func TestPublishRefusedRecord(t *testing.T) {
	c := kafkatest.Start(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "65536"}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "refused"
	if err := kafkarun.EnsureTopics(ctx, c.Brokers(), nil, []kafkarun.TopicSpec{{Name: topic, Partitions: 1, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	p := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: c.Brokers(), BatchTimeout: 20 * time.Millisecond})
	defer p.Close()

	big := queue.Message{Topic: topic, Value: bytes.Repeat([]byte("<"), 100_000)}
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() {
			errs[i] = p.Publish(ctx, queue.Message{Topic: topic, Value: []byte("small " + strconv.Itoa(i))})
		})
	}
	err := p.Publish(ctx, queue.Message{Topic: topic, Value: []byte("before")}, big, queue.Message{Topic: topic, Value: []byte("after")})
	wg.Wait()
	if failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != failure.ReasonTooLarge {
		t.Fatalf("publish with a refused record: %v (class %v, reason %s), want permanent too_large", err, failure.ClassOf(err), failure.ReasonOf(err))
	}
	t.Logf("refused: %v", err)
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent small record %d: %v", i, err)
		}
	}
	got := values(t, c.Brokers(), topic)
	if len(got) != 12 {
		t.Errorf("%d records on the topic, want the 12 small ones: %.40q", len(got), got)
	}
	for _, v := range got {
		if len(v) > 100 {
			t.Errorf("the refused record was written")
		}
	}
}

// A record over queue.MaxRecordBytes is refused by the producer itself,
// before any I/O, as permanent too_large; the others of the call are
// written.
func TestPublishRecordOverLimit(t *testing.T) {
	c, p := setup(t, "over", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	over := queue.Message{Topic: "over", Value: bytes.Repeat([]byte("x"), queue.MaxRecordBytes)}
	err := p.Publish(ctx, queue.Message{Topic: "over", Value: []byte("a")}, over, queue.Message{Topic: "over", Value: []byte("b")})
	if failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != failure.ReasonTooLarge {
		t.Fatalf("publish of %d bytes: %v, want permanent too_large", len(over.Value), err)
	}
	if got := values(t, c.Brokers(), "over"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("topic holds %.20q, want [a b]", got)
	}
	// Just within the limit (the value plus the 1-byte key) is written.
	within := queue.Message{Topic: "over", Key: []byte("k"), Value: bytes.Repeat([]byte("x"), queue.MaxRecordBytes-200)}
	if err := p.Publish(ctx, within); err != nil {
		t.Errorf("publish of %d bytes: %v", within.Size(), err)
	}
}

// A write that fails for a reason that is not about the record (here: the
// topic does not exist) stays retryable: dead-lettering the stream while an
// operator fixes the topic would lose it.
func TestPublishUnknownTopicIsRetryable(t *testing.T) {
	_, p := setup(t, "exists", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.Publish(ctx, queue.Message{Topic: "does-not-exist", Value: []byte("x")})
	if err == nil || failure.ClassOf(err) != failure.Retryable {
		t.Fatalf("publish to a missing topic: %v (class %v), want a retryable error", err, failure.ClassOf(err))
	}
}
