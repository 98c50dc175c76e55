package kafkarun

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/queue"
)

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	Brokers []string
	// Transport carries TLS/SASL and the client id; nil uses kafka-go's default.
	Transport *kafka.Transport
	// BatchTimeout and BatchSize configure kafka-go's Writer, which now
	// carries only records too large to share a request (near
	// queue.MaxRecordBytes) and the lone second try of a refused record.
	// Every other record goes in a grouped write (requests.go) that waits
	// for nothing.
	//
	// BatchTimeout is how long the Writer's partial batch waits for more
	// messages; kafka-go's default is 1s, herald's 1ms.
	BatchTimeout time.Duration
	// BatchSize is the most messages per Writer batch; default 100.
	// kafka-go allocates (and zeroes) room for BatchSize messages, about
	// 150 bytes each, for every batch it opens.
	BatchSize int
}

// Producer publishes messages durably: acks from all in-sync replicas,
// keyed with the same murmur2 partitioner as the Java client, so that a key
// lands on the same partition whichever client wrote it.
type Producer struct {
	w *kafka.Writer
	// alone writes one record per batch: a refused record is written again
	// through it, so that the refusal is known to be about that record and
	// not about a batch it shared with other callers' records.
	alone *kafka.Writer
	// reqs writes grouped records, one request per leader broker.
	reqs *requests
	g    group
	// flushers run the grouped writes.
	flushers *runners
}

// group commits concurrent Publish calls together. A call that finds no
// grouped write out goes at once, so an idle producer adds no wait. A call
// that finds one out waits for it to return and then goes with every call
// that waited meanwhile, in one grouped write: batches grow with the round
// trip instead of the queue. (With kafka-go's Writer, which sealed a
// partition's batch BatchTimeout after its first record and wrote one batch
// per partition at a time, produce round trips of 15 ms under herald bench
// --scenario pipeline --rtt 0.5ms left one record per batch; a grouped
// write is now one produce request per leader broker, requests.go.)
//
// A write that stays out longer than groupStall (a leader move, a broker
// that stopped answering) lets another start, and so on up to groupWrites:
// the calls that arrive meanwhile are not held behind it. Below that, one
// write at a time: with up to four started at once, a dispatcher's
// publishes at 2,000 events/s went out as four or five produce requests per
// 5 ms of events instead of two, and each is a request the broker handles
// and a batch of records every consumer fetches on its own.
//
// A call that would go at once waits instead while callers that said they
// will publish (Expect: the dispatcher's handlers) have not, up to
// groupGather: the events of one fetch are planned side by side, and the
// first of them to publish went alone, the rest in a second request behind
// it. At 2,000 events/s that was 2.7 produce requests per 5 ms of events,
// and each of them woke every channel's consumer for a fetch of its own.
type group struct {
	mu       sync.Mutex
	pending  []*publishCall
	writing  int           // grouped writes out
	newest   time.Time     // when the newest of them started
	stallAt  time.Duration // groupStall; tests shorten or lengthen it
	stall    *time.Timer
	stalling bool // stall is armed
	// expected counts the callers that said they will publish soon
	// (Expect) and have not said they are done, expectedPending the calls
	// of theirs that wait. While more of them are out than calls of theirs
	// wait, and no grouped write is out, the waiting calls are held for
	// them until gatherUntil (gathering). Only an expected caller's call
	// starts a hold; others join one that is open, and never end it.
	expected        int
	expectedPending int
	gathering       bool
	gatherUntil     time.Time
	gatherMax       time.Duration // groupGather; tests change it
	gather          *time.Timer
	draining        sync.WaitGroup
	// ctx is what grouped writes run on; Close ends it when they outlast
	// closeGrace.
	ctx    context.Context
	cancel context.CancelFunc
}

type publishCall struct {
	km   []kafka.Message
	done chan error
	// expected: the call is an expected caller's (its context came from
	// this producer's Expect).
	expected bool
}

const (
	// groupWrites is how many grouped writes may be out at once, each
	// further one only once the newest has been out for groupStall.
	groupWrites = 4
	groupStall  = 5 * time.Millisecond
	// groupGather is the longest an idle producer holds a call for the
	// expected callers (Expect) that have not published yet.
	groupGather = 1 * time.Millisecond
	// groupMost is the most records one grouped call takes; the rest wait
	// for the next.
	groupMost = 2000
	// groupable is the largest record (key, value and headers) that is
	// grouped with others' records. kafka-go refuses a record over
	// BatchBytes before writing any of a call's records; a record near the
	// limit is written in a call of its own so the refusal stays its own.
	groupable = queue.MaxRecordBytes - 4<<10
	// closeGrace is how long Close waits for grouped writes before it
	// abandons them (their callers get the error and retry).
	closeGrace = 10 * time.Second
	// writeAttempts, writeBackoffMin and writeBackoffMax are how often and
	// how patiently a write is tried again after a temporary error: the
	// Writer's MaxAttempts and backoffs, and the grouped writes' own.
	writeAttempts   = 5
	writeBackoffMin = 20 * time.Millisecond
	writeBackoffMax = 500 * time.Millisecond
)

var _ queue.Publisher = (*Producer)(nil)

// NewProducer returns a Producer. It does not dial until the first Publish.
func NewProducer(cfg ProducerConfig) *Producer {
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = 1 * time.Millisecond
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	writer := func(batchSize int) *kafka.Writer {
		w := &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Balancer:     &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, // zero would be fire-and-forget
			BatchTimeout: cfg.BatchTimeout,
			BatchSize:    batchSize,
			// A batch never exceeds what a broker at its default
			// max.message.bytes accepts, so a refusal for size is about a
			// record, never about how records were batched; and a
			// single record above it is refused here, before any I/O.
			BatchBytes:  queue.MaxRecordBytes,
			MaxAttempts: writeAttempts,
			// herald creates its own topics at start; auto-creation would hide a
			// misconfigured topic name behind a topic nobody consumes.
			AllowAutoTopicCreation: false,
			WriteBackoffMin:        writeBackoffMin,
			WriteBackoffMax:        writeBackoffMax,
		}
		if cfg.Transport != nil {
			w.Transport = cfg.Transport
		}
		return w
	}
	p := &Producer{w: writer(cfg.BatchSize), alone: writer(1), reqs: newRequests(cfg.Brokers, cfg.Transport), flushers: newRunners()}
	p.g.ctx, p.g.cancel = context.WithCancel(context.Background())
	p.g.stallAt = groupStall
	p.g.gatherMax = groupGather
	return p
}

// Publish writes msgs and returns once all were acknowledged. On error some
// messages may have been written; callers retry the whole set, and
// consumers deduplicate by notification id.
//
// A record the broker will never accept (classifyPublish) makes the error
// permanent (package failure): the caller dead-letters what it was handling
// instead of retrying for ever. Every other record of the call has then
// been written, so that only the refused ones are missing.
func (p *Producer) Publish(ctx context.Context, msgs ...queue.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	km := make([]kafka.Message, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		km[i] = kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Time: m.Time}
		if len(m.Headers) > 0 {
			hs := make([]kafka.Header, len(m.Headers))
			for j, h := range m.Headers {
				hs[j] = kafka.Header{Key: h.Key, Value: h.Value}
			}
			km[i].Headers = hs
		}
	}
	for i := range km {
		if recordSize(&km[i]) > groupable {
			return p.write(ctx, km)
		}
	}
	c := &publishCall{km: km, done: make(chan error, 1), expected: ctx.Value(expectKey{}) == p}
	p.g.mu.Lock()
	p.g.pending = append(p.g.pending, c)
	if c.expected {
		p.g.expectedPending++
	}
	p.startLocked(time.Now())
	p.g.mu.Unlock()
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		// A call still waiting is withdrawn, so that callers retrying
		// through a broker outage do not pile up copies; one already
		// taken may still be written: callers retry the whole set and
		// consumers deduplicate, as after any publish error.
		p.g.mu.Lock()
		if i := slices.Index(p.g.pending, c); i >= 0 {
			p.g.pending = slices.Delete(p.g.pending, i, i+1)
			if c.expected {
				p.g.expectedPending--
			}
		}
		p.g.mu.Unlock()
		return fmt.Errorf("kafkarun: publish: %w", ctx.Err())
	}
}

// startLocked starts a grouped write of the waiting calls when none is out,
// or when the newest has been out for groupStall and fewer than groupWrites
// are; otherwise, while another may start later, it arms the stall timer
// for when it may.
func (p *Producer) startLocked(now time.Time) {
	g := &p.g
	if len(g.pending) == 0 && g.gathering {
		g.gathering = false // the calls held gave up
		g.gather.Stop()
	}
	if len(g.pending) == 0 || g.writing >= groupWrites {
		return
	}
	if g.writing == 0 && g.gatherMax > 0 && g.expected > g.expectedPending && (g.gathering || g.expectedPending > 0) {
		if !g.gathering {
			g.gathering = true
			g.gatherUntil = now.Add(g.gatherMax)
			if g.gather == nil {
				g.gather = time.AfterFunc(g.gatherMax, p.gathered)
			} else {
				g.gather.Reset(g.gatherMax)
			}
		}
		if now.Before(g.gatherUntil) {
			return
		}
	}
	if g.gathering {
		g.gathering = false
		g.gather.Stop()
	}
	if wait := g.newest.Add(g.stallAt).Sub(now); g.writing > 0 && wait > 0 {
		if !g.stalling {
			g.stalling = true
			if g.stall == nil {
				g.stall = time.AfterFunc(wait, p.stalled)
			} else {
				g.stall.Reset(wait)
			}
		}
		return
	}
	g.writing++
	g.newest = now
	g.draining.Add(1)
	calls := g.takeLocked()
	p.flushers.run(func() { p.flush(calls) })
}

// gathered runs when calls held for expected callers may go.
func (p *Producer) gathered() {
	p.g.mu.Lock()
	if p.g.gathering {
		p.startLocked(time.Now())
	}
	p.g.mu.Unlock()
}

// expectKey marks the context of an expected caller (Expect); its value
// is the producer that expects it.
type expectKey struct{}

// Expect says the caller on ctx will probably publish soon: an idle
// producer holds its own and others' calls for it briefly (groupGather) and
// writes them together. Its calls must be made on the context returned;
// done says it has published or will not (calls after the first do
// nothing).
func (p *Producer) Expect(ctx context.Context) (context.Context, func()) {
	p.g.mu.Lock()
	p.g.expected++
	p.g.mu.Unlock()
	ended := false
	return context.WithValue(ctx, expectKey{}, p), func() {
		p.g.mu.Lock()
		defer p.g.mu.Unlock()
		if ended {
			return
		}
		ended = true
		p.g.expected--
		if p.g.gathering {
			p.startLocked(time.Now())
		}
	}
}

// stalled runs when the newest grouped write may have been out for
// groupStall with calls waiting.
func (p *Producer) stalled() {
	p.g.mu.Lock()
	p.g.stalling = false
	p.startLocked(time.Now())
	p.g.mu.Unlock()
}

// takeLocked removes the waiting calls a grouped write takes (up to
// groupMost records, and always at least one call).
func (g *group) takeLocked() []*publishCall {
	n, records := 0, 0
	for n < len(g.pending) && (n == 0 || records+len(g.pending[n].km) <= groupMost) {
		records += len(g.pending[n].km)
		n++
	}
	calls := make([]*publishCall, n)
	copy(calls, g.pending)
	for _, c := range calls {
		if c.expected {
			g.expectedPending--
		}
	}
	rest := copy(g.pending, g.pending[n:])
	clear(g.pending[rest:])
	g.pending = g.pending[:rest]
	return calls
}

// flush writes calls, then whatever waited meanwhile, until nothing waits.
func (p *Producer) flush(calls []*publishCall) {
	defer p.g.draining.Done()
	for {
		p.writeGroup(calls)
		p.g.mu.Lock()
		if len(p.g.pending) == 0 {
			p.g.writing--
			p.g.mu.Unlock()
			return
		}
		calls = p.g.takeLocked()
		p.g.newest = time.Now()
		p.g.mu.Unlock()
	}
}

// writeGroup writes the records of calls in one grouped write and gives
// each call the outcome of its own records. It runs on no caller's context
// (a caller that stops waiting must not fail the others) but the
// producer's; the grouped write's attempts and timeouts bound it.
func (p *Producer) writeGroup(calls []*publishCall) {
	ctx := p.g.ctx
	all := calls[0].km
	if len(calls) > 1 {
		total := 0
		for _, c := range calls {
			total += len(c.km)
		}
		all = make([]kafka.Message, 0, total)
		for _, c := range calls {
			all = append(all, c.km...)
		}
	}
	we := p.reqs.write(ctx, all)
	off := 0
	for _, c := range calls {
		var err error
		if we != nil {
			err = p.settle(ctx, c.km, we[off:off+len(c.km)])
		}
		c.done <- err
		off += len(c.km)
	}
}

// recordSize is what kafkarun counts of a record against the limits: key,
// value and headers (kafka-go adds a few dozen bytes of framing).
func recordSize(m *kafka.Message) int {
	size := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		size += len(h.Key) + len(h.Value)
	}
	return size
}

// write is Publish on records already in kafka-go's form, in a
// WriteMessages of their own.
func (p *Producer) write(ctx context.Context, km []kafka.Message) error {
	err := p.w.WriteMessages(ctx, km...)
	if err == nil {
		return nil
	}
	// The client refuses a record over its batch limit before writing
	// anything: write the others, then report the refusal.
	var big kafka.MessageTooLargeError
	if errors.As(err, &big) {
		perm := recordError(&big.Message, err)
		if len(big.Remaining) > 0 {
			if err := p.write(ctx, big.Remaining); err != nil && !recordRefused(err) {
				return err
			}
		}
		return fmt.Errorf("kafkarun: publish: %w", perm)
	}
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return fmt.Errorf("kafkarun: publish: %w", err)
	}
	return p.settle(ctx, km, we)
}

// settle turns the per-record errors of km's write into Publish's error.
// Refused records are tried once more alone: only a record the broker
// refuses by itself is permanently refused.
func (p *Producer) settle(ctx context.Context, km []kafka.Message, we kafka.WriteErrors) error {
	var retry, perm error
	failed := 0
	for i, e := range we {
		if e == nil {
			continue
		}
		if recordRefused(e) {
			e = p.alone.WriteMessages(ctx, km[i])
			var wes kafka.WriteErrors
			if errors.As(e, &wes) && len(wes) == 1 {
				e = wes[0]
			}
			if e == nil {
				continue
			}
			if recordRefused(e) {
				if perm == nil {
					perm = recordError(&km[i], e)
				}
				continue
			}
		}
		failed++
		if retry == nil {
			retry = e
		}
	}
	if retry != nil {
		return fmt.Errorf("kafkarun: publish: %d of %d messages failed: %w", failed, len(km), retry)
	}
	if perm != nil {
		return fmt.Errorf("kafkarun: publish: %w", perm)
	}
	return nil
}

// Close waits for the grouped writes out, flushes pending batches and
// closes connections.
func (p *Producer) Close() error {
	// Calls held for expected callers go now, and none is held after.
	p.g.mu.Lock()
	p.g.gatherMax = 0
	p.startLocked(time.Now())
	p.g.mu.Unlock()
	drained := make(chan struct{})
	go func() { p.g.draining.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(closeGrace):
		p.g.cancel()
		<-drained
	}
	p.g.cancel()
	p.g.mu.Lock()
	if p.g.stall != nil {
		p.g.stall.Stop()
	}
	if p.g.gather != nil {
		p.g.gather.Stop()
	}
	p.g.mu.Unlock()
	return errors.Join(p.w.Close(), p.alone.Close())
}

// TopicSpec describes a topic herald owns.
type TopicSpec struct {
	Name       string
	Partitions int
	// Replication is the replication factor; -1 uses the broker default.
	Replication int
	// Config is set on the topic when it is created (retention.ms for the
	// schedule topic); an existing topic is left as it is.
	Config map[string]string
}

// EnsureTopics creates the topics that do not exist yet and leaves existing
// ones alone (their partition count is an operator decision). It never
// touches topics outside specs.
func EnsureTopics(ctx context.Context, brokers []string, transport *kafka.Transport, specs []TopicSpec) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 15 * time.Second}
	if transport != nil {
		client.Transport = transport
	}
	req := &kafka.CreateTopicsRequest{}
	for _, s := range specs {
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: s.Replication}
		for k, v := range s.Config {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("kafkarun: create topics: %w", err)
	}
	for topic, e := range resp.Errors {
		if e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
			return fmt.Errorf("kafkarun: create topic %s: %w", topic, e)
		}
	}
	return nil
}
