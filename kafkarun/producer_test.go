package kafkarun_test

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// values reads every value on topic's partition 0.
func values(t *testing.T, brokers []string, topic string) []string {
	t.Helper()
	return partitionValues(t, brokers, topic, 0)
}

// partitionValues reads every value on one partition of topic.
func partitionValues(t *testing.T, brokers []string, topic string, partition int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A transport of its own: kafka-go's default one caches metadata for
	// 6 s, and a test that moved a partition's leader would ask the old one.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(partition)}}})
	if err != nil {
		t.Fatal(err)
	}
	end := resp.Topics[topic][0].LastOffset
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition, MaxWait: 50 * time.Millisecond})
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

// Concurrent publishers share produce requests however long a request
// takes. kafka-go seals a partition's batch BatchTimeout after its first
// record and writes one batch per partition at a time, so with slow produce
// round trips the records that follow queued up in batches of about one:
// herald bench --scenario pipeline --rtt 0.5ms measured one record per
// batch and 15 ms per write, and a partition carried one record per round
// trip. Publish now groups the calls that wait while writes are out
// (group in producer.go). Here the broker takes 0.5–2.3 ms over every
// produce request and 64 publishers write 25 records each, one at a time,
// over 6 partitions: before, 1,422 requests for the 1,600 records (1.1
// each); now 250–450.
func TestPublishGroupsWhileWritesAreOut(t *testing.T) {
	c := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic, partitions = "grouped", 6
	if err := kafkarun.EnsureTopics(ctx, c.Brokers(), nil, []kafkarun.TopicSpec{{Name: topic, Partitions: partitions, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		requests.Add(1)
		time.Sleep(time.Duration(500+requests.Load()%7*300) * time.Microsecond)
		return nil, nil, false
	})
	p := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: c.Brokers()})
	defer p.Close()

	const publishers, each = 64, 25
	var wg sync.WaitGroup
	errs := make(chan error, publishers*each)
	for i := range publishers {
		wg.Go(func() {
			for j := range each {
				v := strconv.Itoa(i) + "/" + strconv.Itoa(j)
				if err := p.Publish(ctx, queue.Message{Topic: topic, Key: []byte(v), Value: []byte(v)}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var got []string
	for part := range partitions {
		got = append(got, partitionValues(t, c.Brokers(), topic, part)...)
	}
	slices.Sort(got)
	if len(got) != publishers*each || len(slices.Compact(got)) != publishers*each {
		t.Fatalf("%d records on the topic, want %d distinct", len(got), publishers*each)
	}
	n := requests.Load()
	t.Logf("%d records in %d produce requests (%.1f per request)", len(got), n, float64(len(got))/float64(n))
	if n > publishers*each/2 {
		t.Errorf("%d produce requests for %d records: concurrent publishes are not sharing requests", n, len(got))
	}
}
