package kafkarun

import (
	"bytes"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// TestFetchDecodesOnlyTheFeedsRoom: a response's records for a partition
// are decoded only up to the feed's room in bytes (4 MB here, with room
// for 8 records by count, which does not bound a response). Byte
// limits on a fetch count compressed bytes: before, every record of a
// response was decoded into the feed, and an outside tester's zstd batches
// of 290 KB events (2 MB on the wire, 850 MB decoded) took a dispatcher to
// 3 GB.
func TestFetchDecodesOnlyTheFeedsRoom(t *testing.T) {
	const topic = "squeezed"
	c, ctx := oneTopic(t, topic)
	w := &kafka.Writer{Addr: kafka.TCP(c.Brokers()...), Topic: topic, Compression: kafka.Zstd,
		BatchSize: 1000, BatchBytes: 64 << 20, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	const n, size = 300, 100_000 // 30 MB of records, a few KB compressed
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Value: bytes.Repeat([]byte{'x'}, size)}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	rt := &kafka.Transport{}
	defer rt.CloseIdleConnections()
	f := newFetcher(rt, c.Brokers(), []string{topic}, 4, map[int32]*session{}, zap.NewNop())
	fd := f.add(topic, 0, 0)
	leaders, err := f.leaders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := f.fetch(ctx, leaders[fd.topicPartition], []*feed{fd}, &session{})
	if r.err != nil || len(r.parts) != 1 || r.parts[0].err != nil {
		t.Fatalf("fetch: %v %+v", r.err, r.parts)
	}
	got := r.parts[0]
	held := 0
	for _, m := range got.msgs {
		held += recordBytes(m)
	}
	t.Logf("%d records decoded (%d bytes), next offset %d", len(got.msgs), held, got.next)
	// 4 MB of 100 KB records: the byte bound, at most one record past it.
	if wantMin, wantMax := feedBytes/size, feedBytes/size+1; len(got.msgs) < wantMin || len(got.msgs) > wantMax || held > feedBytes+size {
		t.Errorf("%d records of %d bytes decoded, want %d..%d and at most %d bytes", len(got.msgs), held, wantMin, wantMax, feedBytes+size)
	}
	if got.next != int64(len(got.msgs)) {
		t.Errorf("next offset %d after %d records from 0", got.next, len(got.msgs))
	}
	f.apply(r)
	if fd.bytes != held || len(fd.msgs) != len(got.msgs) {
		t.Errorf("feed holds %d records, %d bytes; want %d, %d", len(fd.msgs), fd.bytes, len(got.msgs), held)
	}
	if _, err := fd.take(ctx); err != nil || fd.bytes != held-size {
		t.Errorf("after a take the feed holds %d bytes, want %d (%v)", fd.bytes, held-size, err)
	}
}
