package kafkarun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"

	"github.com/gymhq/herald/queue"
)

// requests writes grouped records in as few produce requests as the
// cluster allows: one request per leader broker, holding a record batch
// for every partition it leads. kafka-go's Writer sends one request per
// partition batch and holds each batch open for BatchTimeout first; with
// records spread over many partitions a grouped write of a few dozen
// records was a few dozen requests, each a round trip, a write and a read
// syscall and the broker's per-request work (issue 14's profile: the
// producer was the largest single cost of the latency scenario). The
// records go through kafka-go's own transport (its connections, TLS and
// SASL, its cached metadata) and its protocol encoding; only the grouping
// into requests is herald's.
type requests struct {
	addr     net.Addr
	rt       kafka.RoundTripper
	balancer kafka.Balancer
	// attempts and backoffMin/Max are the Writer's (writeAttempts): a
	// record whose partition answered with a temporary error, or whose
	// request met a transient network error, is tried again, up to
	// attempts in all (longer for a leader move: leaderWait), after a
	// jittered exponential backoff from backoffMin up to backoffMax.
	attempts               int
	backoffMin, backoffMax time.Duration
	// leaderWait is how long records whose partition answered that its
	// leader moved (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE, or a
	// request kafka-go's transport would not route) keep being tried,
	// past attempts: longer than the transport takes to refresh its
	// cached metadata (kafka-go's MetadataTTL, 6 s by default), which such
	// an answer does not refresh, so every attempt before the refresh goes
	// to the old leader. With attempts alone, 5 of 6 publishes made right
	// after a leader move failed within a second (an outside tester; 4 of
	// 6 with kafka-go's Writer before).
	leaderWait time.Duration
	timeout    time.Duration
	// batchBytes bounds a partition's record batch, as the Writer's
	// BatchBytes did: records beyond it go in the next request.
	batchBytes int
	// requestBytes bounds a request: a broker's batches beyond it go in
	// further requests to it, one after another. 1 MB, as the Java
	// producer's max.request.size: without a bound one grouped write of
	// large notifications over many partitions was one request of 114 MB
	// (an outside tester's class cancellation with 1,500 attendees, over
	// 3 × 40 partitions), past a broker's socket.request.max.bytes
	// (100 MB by default), where the broker closes the connection and
	// every retry fails alike.
	requestBytes int
}

func newRequests(brokers []string, transport *kafka.Transport) *requests {
	r := &requests{
		addr: kafka.TCP(brokers...), rt: kafka.DefaultTransport, balancer: &kafka.Murmur2Balancer{},
		attempts: writeAttempts, backoffMin: writeBackoffMin, backoffMax: writeBackoffMax, leaderWait: 10 * time.Second,
		timeout: 10 * time.Second, batchBytes: queue.MaxRecordBytes, requestBytes: queue.MaxRecordBytes,
	}
	if transport != nil {
		r.rt = transport
	}
	return r
}

// write writes km. It returns nil when every record was written, and
// otherwise one error per record, nil for each record written.
func (r *requests) write(ctx context.Context, km []kafka.Message) kafka.WriteErrors {
	errs := make(kafka.WriteErrors, len(km))
	pending := make([]int, len(km))
	for i := range pending {
		pending[i] = i
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval: r.backoffMin, RandomizationFactor: 0.5, Multiplier: 3, MaxInterval: r.backoffMax,
	}
	attempt := 0
	// Retry's own error is the last attempt's, already in errs.
	_, _ = backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		for _, i := range pending {
			errs[i] = nil
		}
		if err := r.once(ctx, km, pending, errs); err != nil {
			for _, i := range pending {
				errs[i] = err
			}
		}
		pending = pending[:0]
		for i, e := range errs {
			if e != nil && retryable(e) {
				pending = append(pending, i)
			}
		}
		if len(pending) == 0 {
			return struct{}{}, nil
		}
		if attempt >= r.attempts && !slices.ContainsFunc(pending, func(i int) bool { return leaderMoved(errs[i]) }) {
			return struct{}{}, backoff.Permanent(errs[pending[0]])
		}
		return struct{}{}, errs[pending[0]]
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(r.leaderWait))
	if slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
		return errs
	}
	return nil
}

// retryable is the Writer's test for trying a write again (an error kafka
// calls temporary, or a connection that broke), and a request kafka-go's
// transport would not route: it routes by its own cached metadata, which
// can change between the read that grouped the request and the request
// ("mismatching leaders" after a leader moved, no leader during an
// election); the next attempt groups by the new metadata.
func retryable(err error) bool {
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	if leaderMoved(err) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// leaderMoved reports whether err says the record went to a broker that
// no longer leads its partition, or that kafka-go's transport would not
// route it for that reason.
func leaderMoved(err error) bool {
	var routing *produceAPI.Error
	return errors.Is(err, kafka.NotLeaderForPartition) || errors.Is(err, kafka.LeaderNotAvailable) || errors.As(err, &routing)
}

// topicPartition names a partition.
type topicPartition struct {
	topic     string
	partition int32
}

// chunk is one partition's records in one request.
type chunk struct {
	topicPartition
	idx   []int // into km, in order
	bytes int
}

// once makes one attempt at writing the records km[pending], setting
// errs[i] for each one that failed. It returns an error, and sets none,
// when it cannot route them (no metadata for a topic).
func (r *requests) once(ctx context.Context, km []kafka.Message, pending []int, errs kafka.WriteErrors) error {
	var names []string
	for _, i := range pending {
		if !slices.Contains(names, km[i].Topic) {
			names = append(names, km[i].Topic)
		}
	}
	res, err := r.rt.RoundTrip(ctx, r.addr, &metadataAPI.Request{TopicNames: names})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	leaders := make(map[string]map[int32]int32, len(names)) // topic → partition → leader
	parts := make(map[string][]int, len(names))
	for _, t := range res.(*metadataAPI.Response).Topics {
		if !slices.Contains(names, t.Name) {
			continue
		}
		if t.ErrorCode != 0 {
			return fmt.Errorf("topic %s: %w", t.Name, kafka.Error(t.ErrorCode))
		}
		ls := make(map[int32]int32, len(t.Partitions))
		ps := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ls[p.PartitionIndex] = p.LeaderID
			ps = append(ps, int(p.PartitionIndex))
		}
		slices.Sort(ps)
		leaders[t.Name], parts[t.Name] = ls, ps
	}
	for _, name := range names {
		if len(parts[name]) == 0 {
			return fmt.Errorf("topic %s: %w", name, kafka.UnknownTopicOrPartition)
		}
	}

	// Each partition's records in order, cut into chunks of at most
	// batchBytes; round k of requests carries every partition's k-th chunk.
	chunks := make(map[topicPartition][]*chunk)
	var order []topicPartition
	for _, i := range pending {
		m := &km[i]
		p := int32(r.balancer.Balance(*m, parts[m.Topic]...))
		k := topicPartition{m.Topic, p}
		cs, seen := chunks[k]
		if !seen {
			order = append(order, k)
		}
		size := recordSize(m) + recordOverhead
		if len(cs) == 0 || (cs[len(cs)-1].bytes+size > r.batchBytes && len(cs[len(cs)-1].idx) > 0) {
			cs = append(cs, &chunk{topicPartition: k})
		}
		c := cs[len(cs)-1]
		c.idx = append(c.idx, i)
		c.bytes += size
		chunks[k] = cs
	}
	rounds := 0
	for _, cs := range chunks {
		rounds = max(rounds, len(cs))
	}
	failed := make(map[topicPartition]error)
	for round := range rounds {
		byLeader := make(map[int32][]*chunk)
		var leaderOrder []int32
		for _, k := range order {
			cs := chunks[k]
			if round >= len(cs) {
				continue
			}
			if err := failed[k]; err != nil {
				// An earlier chunk of this partition failed: a later
				// one written now would land before it on a retry.
				for _, i := range cs[round].idx {
					errs[i] = err
				}
				continue
			}
			l := leaders[k.topic][k.partition]
			if _, ok := byLeader[l]; !ok {
				leaderOrder = append(leaderOrder, l)
			}
			byLeader[l] = append(byLeader[l], cs[round])
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for n, l := range leaderOrder {
			send := func() {
				for _, cs := range r.pack(byLeader[l]) {
					results := r.produce(ctx, km, cs)
					mu.Lock()
					for j, c := range cs {
						if results[j] == nil {
							continue
						}
						failed[c.topicPartition] = results[j]
						for _, i := range c.idx {
							errs[i] = results[j]
						}
					}
					mu.Unlock()
				}
			}
			if n == len(leaderOrder)-1 {
				// The last leader's requests go from this goroutine, whose
				// stack has grown already: with one broker, a goroutine
				// per grouped write grew a new one through kafka-go's
				// calls every time.
				send()
				break
			}
			wg.Go(send)
		}
		wg.Wait()
	}
	return nil
}

// pack cuts one broker's chunks of a round into requests of at most
// requestBytes (a chunk larger than that goes alone).
func (r *requests) pack(cs []*chunk) [][]*chunk {
	var out [][]*chunk
	size := 0
	for _, c := range cs {
		n := c.bytes + batchOverhead
		if len(out) == 0 || size+n > r.requestBytes {
			out = append(out, nil)
			size = 0
		}
		out[len(out)-1] = append(out[len(out)-1], c)
		size += n
	}
	return out
}

// batchOverhead is a record batch's header (61 bytes) and its partition's
// fields in the request, rounded up.
const batchOverhead = 128

// recordOverhead is what a record adds to a batch beyond recordSize:
// varint lengths, offset and timestamp deltas, attributes (at most about
// 20 bytes, a few more per header); 64 keeps a chunk under the broker's
// limit whatever the headers.
const recordOverhead = 64

// produce sends the chunks, all led by one broker, in one request and
// returns each chunk's outcome.
func (r *requests) produce(ctx context.Context, km []kafka.Message, cs []*chunk) []error {
	req := &produceAPI.Request{Acks: int16(kafka.RequireAll), Timeout: int32(r.timeout / time.Millisecond)}
	for _, c := range cs {
		recs := make([]protocol.Record, len(c.idx))
		for j, i := range c.idx {
			m := &km[i]
			recs[j] = protocol.Record{Time: m.Time, Headers: m.Headers}
			if m.Key != nil {
				recs[j].Key = protocol.NewBytes(m.Key)
			}
			if m.Value != nil {
				recs[j].Value = protocol.NewBytes(m.Value)
			}
		}
		part := produceAPI.RequestPartition{Partition: c.partition, RecordSet: protocol.RecordSet{Records: protocol.NewRecordReader(recs...)}}
		if n := len(req.Topics); n > 0 && req.Topics[n-1].Topic == c.topic {
			req.Topics[n-1].Partitions = append(req.Topics[n-1].Partitions, part)
		} else {
			req.Topics = append(req.Topics, produceAPI.RequestTopic{Topic: c.topic, Partitions: []produceAPI.RequestPartition{part}})
		}
	}
	out := make([]error, len(cs))
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	m, err := r.rt.RoundTrip(rctx, r.addr, req)
	if err != nil {
		for j := range out {
			out[j] = err
		}
		return out
	}
	got := make(map[topicPartition]error, len(cs))
	for _, t := range m.(*produceAPI.Response).Topics {
		for _, p := range t.Partitions {
			var e error
			if p.ErrorCode != 0 {
				e = kafka.Error(p.ErrorCode)
				if p.ErrorMessage != "" {
					e = fmt.Errorf("%w: %s", e, p.ErrorMessage)
				}
			}
			got[topicPartition{t.Topic, p.Partition}] = e
		}
	}
	for j, c := range cs {
		e, ok := got[c.topicPartition]
		if !ok {
			e = fmt.Errorf("topic %s partition %d: no answer in the produce response: %w", c.topic, c.partition, kafka.Unknown)
		}
		out[j] = e
	}
	return out
}
