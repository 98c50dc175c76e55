package kafkarun_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// countFetch records how many partitions each fetch request c receives
// names.
func countFetch(c *kafkatest.Cluster) func() []int {
	var mu sync.Mutex
	var parts []int
	c.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		n := 0
		for _, t := range kr.(*kmsg.FetchRequest).Topics {
			n += len(t.Partitions)
		}
		mu.Lock()
		parts = append(parts, n)
		mu.Unlock()
		return nil, nil, false
	})
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(parts)
	}
}

// handled is a handler recording the offsets it saw per partition.
type handled struct {
	mu   sync.Mutex
	seen map[int][]int64
	n    int
}

func (h *handled) handle(_ context.Context, m *queue.Message) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[int][]int64{}
	}
	h.seen[m.Partition] = append(h.seen[m.Partition], m.Offset)
	h.n++
	return nil
}

func (h *handled) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// once fails t unless every partition's offsets were seen once each, from
// first[p] (0 when absent) to end[p].
func (h *handled) once(t *testing.T, first, end map[int]int64) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for p, e := range end {
		got := slices.Clone(h.seen[p])
		slices.Sort(got)
		var want []int64
		for o := first[p]; o < e; o++ {
			want = append(want, o)
		}
		if !slices.Equal(got, want) {
			t.Errorf("partition %d: handled offsets %v, want %v", p, got, want)
		}
	}
}

// runConsumer runs a consumer until the test ends, or until stop, which
// returns once Run has.
func runConsumer(t *testing.T, cfg kafkarun.ConsumerConfig, h queue.Handler) (cons *kafkarun.Consumer, stop func()) {
	t.Helper()
	cons, err := kafkarun.NewConsumer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = cons.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return cons, stop
}

// TestConsumerFetchesEveryPartitionInOneRequest: one fetch request per
// broker names every partition the consumer holds on it. kafka-go's
// Reader, which herald ran per partition before, named one.
func TestConsumerFetchesEveryPartitionInOneRequest(t *testing.T) {
	const partitions = 6
	c, p := setup(t, "fan", partitions)
	produce(t, p, "fan", 120, 12)
	fetches := countFetch(c)
	h := &handled{}
	runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "fan-g", Topics: []string{"fan"}}, h.handle)
	poll.Until(t, 30*time.Second, "all 120 records handled", func() bool { return h.count() >= 120 })
	got := fetches()
	end := map[int]int64{}
	for part := range partitions {
		end[part] = int64(len(partitionValues(t, c.Brokers(), "fan", part)))
	}
	h.once(t, nil, end)
	t.Logf("partitions named by each fetch request: %v", got)
	if len(got) == 0 || got[0] != partitions {
		t.Errorf("the first fetch request named %v partitions, want all %d", got, partitions)
	}
	if slices.Max(got) != partitions {
		t.Errorf("no fetch request named all %d partitions: %v", partitions, got)
	}
}

// TestConsumerFollowsMovedLeaders: partitions whose leader moves to
// another broker are fetched from the new one, every record once.
func TestConsumerFollowsMovedLeaders(t *testing.T) {
	const partitions = 3
	c, p := withTopics(t, partitions, []string{"mvc"}, kfake.NumBrokers(3))
	for part := range partitions {
		if err := c.MoveTopicPartition("mvc", int32(part), int32(part)); err != nil {
			t.Fatal(err)
		}
	}
	pub := func(from int) {
		var msgs []queue.Message
		for part := range partitions {
			for i := range 10 {
				msgs = append(msgs, queue.Message{Topic: "mvc", Key: keyFor(part, partitions, "mvc"), Value: []byte(strconv.Itoa(from + i))})
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Publish(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	pub(0)
	h := &handled{}
	runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "mvc-g", Topics: []string{"mvc"}}, h.handle)
	poll.Until(t, 30*time.Second, "the first 30 records handled", func() bool { return h.count() >= 30 })
	for part := range partitions {
		if err := c.MoveTopicPartition("mvc", int32(part), int32((part+1)%3)); err != nil {
			t.Fatal(err)
		}
	}
	moved := time.Now()
	pub(10)
	written := time.Now()
	poll.Until(t, 30*time.Second, "all 60 records handled after the leaders moved", func() bool { return h.count() >= 60 })
	t.Logf("records written %v after the move were handled %v after they were written", written.Sub(moved).Round(time.Millisecond), time.Since(written).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // nothing more arrives
	h.once(t, nil, map[int]int64{0: 20, 1: 20, 2: 20})
}

// deleteRecords deletes partition's records before offset, as
// kafka-delete-records.sh does (kafka-go has no client for it).
func deleteRecords(t *testing.T, addr, topic string, partition int32, before int64) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.SetVersion(1)
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = partition, before
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if _, err := conn.Write(kmsg.NewRequestFormatter().AppendRequest(nil, req, 1)); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatal(err)
	}
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	if err := resp.ReadFrom(body[4:]); err != nil { // past the correlation id
		t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("delete records: %v", kafka.Error(rp.ErrorCode))
			}
		}
	}
}

// TestConsumerSkipsDeletedRecords: a committed offset whose records the
// broker deleted (retention) is answered OFFSET_OUT_OF_RANGE; the
// consumer goes on from the partition's first offset, as kafka-go's
// Reader did, instead of stalling.
func TestConsumerSkipsDeletedRecords(t *testing.T) {
	c, p := setup(t, "gone", 1)
	produce(t, p, "gone", 20, 1)
	deleteRecords(t, c.Brokers()[0], "gone", 0, 12)
	cl := &kafka.Client{Addr: kafka.TCP(c.Brokers()...), Timeout: 10 * time.Second}
	res, err := cl.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{
		GroupID: "gone-g", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{"gone": {{Partition: 0, Offset: 5}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Topics["gone"][0].Error; err != nil {
		t.Fatal(err)
	}
	h := &handled{}
	runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "gone-g", Topics: []string{"gone"}}, h.handle)
	poll.Until(t, 30*time.Second, "the 8 records left handled", func() bool { return h.count() >= 8 })
	time.Sleep(300 * time.Millisecond)
	h.once(t, map[int]int64{0: 12}, map[int]int64{0: 20})
}

// TestConsumerIdlePartitionsHoldNoSlots: a partition with nothing to fetch
// must not hold one of the 2×MaxInFlight in-flight slots. The partition
// loops took a slot before waiting for a record, so once idle partitions
// (a retry topic's, usually) held every slot, partitions with records
// waited forever (an outside tester: 12 of 200 sent with
// HERALD_MAX_IN_FLIGHT=4 on the email group's 24 partitions; 2,989 of 3,000
// with the default on 520).
func TestConsumerIdlePartitionsHoldNoSlots(t *testing.T) {
	const partitions = 16
	c, p := setup(t, "idle", partitions)
	var msgs []queue.Message
	for i := range 100 {
		part := 13 + i%2 // two busy partitions of sixteen
		msgs = append(msgs, queue.Message{Topic: "idle", Key: keyFor(part, partitions, "idle"), Value: []byte(strconv.Itoa(i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	h := &handled{}
	runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "idle-g", Topics: []string{"idle"}, MaxInFlight: 1}, h.handle)
	poll.Until(t, 30*time.Second, "all 100 records handled", func() bool { return h.count() >= 100 })
	h.once(t, nil, map[int]int64{13: 50, 14: 50})
}

// fetchLog records what each fetch request c receives asks of its
// session: the epoch, the partitions it names and those it forgets.
type fetchLog struct {
	mu   sync.Mutex
	reqs []fetchSeen
}

type fetchSeen struct {
	id, epoch        int32
	named, forgotten int
}

func logFetches(c *kafkatest.Cluster) *fetchLog {
	l := &fetchLog{}
	c.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := kr.(*kmsg.FetchRequest)
		s := fetchSeen{id: r.SessionID, epoch: r.SessionEpoch}
		for _, t := range r.Topics {
			s.named += len(t.Partitions)
		}
		for _, t := range r.ForgottenTopics {
			s.forgotten += len(t.Partitions)
		}
		l.mu.Lock()
		l.reqs = append(l.reqs, s)
		l.mu.Unlock()
		return nil, nil, false
	})
	return l
}

func (l *fetchLog) seen() []fetchSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

// TestConsumerFetchesInASession: the consumer's first fetch request to a
// broker names every partition and opens a fetch session (KIP-227); the
// later ones name only the partitions whose offset moved. Before, every
// request named all twelve partitions, and every response carried all
// twelve, empty or not: at 2,000 events/s the latency scenario's consumers
// sent ~1,400 fetches a second, each naming 12 partitions.
func TestConsumerFetchesInASession(t *testing.T) {
	const partitions = 12
	c, p := setup(t, "sess", partitions)
	fetches := logFetches(c)
	h := &handled{}
	runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "sess-g", Topics: []string{"sess"}}, h.handle)
	poll.Until(t, 30*time.Second, "a first fetch", func() bool { return len(fetches.seen()) > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 20 {
		part := i % 2 // two busy partitions of twelve, a record at a time
		if err := p.Publish(ctx, queue.Message{Topic: "sess", Key: keyFor(part, partitions, "sess"), Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 10*time.Second, "the record handled", func() bool { return h.count() == i+1 })
	}
	h.once(t, nil, map[int]int64{0: 10, 1: 10})
	got := fetches.seen()
	t.Logf("%d fetch requests; the first named %d partitions", len(got), got[0].named)
	if got[0].named != partitions || got[0].epoch != 0 {
		t.Fatalf("the first fetch request named %d partitions at epoch %d, want all %d, opening a session (epoch 0)", got[0].named, got[0].epoch, partitions)
	}
	for i, s := range got[1:] {
		if s.named > 2 || s.epoch != int32(i+1) {
			t.Errorf("fetch request %d named %d partitions at epoch %d; want at most the two busy ones, at epoch %d", i+1, s.named, s.epoch, i+1)
		}
	}
	if len(got) < 20 {
		t.Errorf("only %d fetch requests for 20 records fetched one by one", len(got))
	}
}

// TestConsumerFetchSessionsForgetFullFeeds: a partition whose fetched
// records fill its feed leaves the requests until the feed drains, and so
// the session: the broker would otherwise keep fetching it from an offset
// the consumer has moved past. It joins the session again once the feed
// drains. Every record is handled once.
func TestConsumerFetchSessionsForgetFullFeeds(t *testing.T) {
	const partitions = 4
	c, p := setup(t, "forget", partitions)
	fetches := logFetches(c)
	h := &handled{}
	slow := func(ctx context.Context, m *queue.Message) error {
		time.Sleep(time.Millisecond)
		return h.handle(ctx, m)
	}
	runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "forget-g", Topics: []string{"forget"}, MaxInFlight: 2}, slow)
	poll.Until(t, 30*time.Second, "a first fetch", func() bool { return len(fetches.seen()) > 0 })
	var msgs []queue.Message
	for i := range 400 {
		part := i % partitions
		msgs = append(msgs, queue.Message{Topic: "forget", Key: keyFor(part, partitions, "forget"), Value: []byte(strconv.Itoa(i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 60*time.Second, "all 400 records handled", func() bool { return h.count() >= 400 })
	// The forgotten partitions joined the session again when their feeds
	// drained: records written now reach the consumer.
	if err := p.Publish(ctx, msgs[:40]...); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "40 more records handled", func() bool { return h.count() >= 440 })
	time.Sleep(300 * time.Millisecond) // nothing more arrives
	h.once(t, nil, map[int]int64{0: 110, 1: 110, 2: 110, 3: 110})
	forgotten, full := 0, 0
	for _, s := range fetches.seen() {
		forgotten += s.forgotten
		if s.epoch == 0 {
			full++
		}
	}
	t.Logf("%d fetch requests, %d full; %d partitions forgotten", len(fetches.seen()), full, forgotten)
	if forgotten == 0 {
		t.Error("no request forgot a partition: the feeds never filled, and the test did not test what it says")
	}
	if full != 1 {
		t.Errorf("%d full fetch requests, want 1: the session was restarted", full)
	}
}

// TestConsumerFetchSessionsSurviveEviction: a broker that keeps one fetch
// session evicts each consumer's session when the other opens one. Each
// then meets FETCH_SESSION_ID_NOT_FOUND, opens another at once, and both
// groups still handle every record once.
func TestConsumerFetchSessionsSurviveEviction(t *testing.T) {
	const partitions = 3
	c, p := withTopics(t, partitions, []string{"evict"}, kfake.BrokerConfigs(map[string]string{"max.incremental.fetch.session.cache.slots": "1"}))
	fetches := logFetches(c)
	a, b := &handled{}, &handled{}
	runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "evict-a", Topics: []string{"evict"}}, a.handle)
	runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "evict-b", Topics: []string{"evict"}}, b.handle)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 30 {
		part := i % partitions
		if err := p.Publish(ctx, queue.Message{Topic: "evict", Key: keyFor(part, partitions, "evict"), Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 10*time.Second, "the record handled by both groups", func() bool { return a.count() == i+1 && b.count() == i+1 })
	}
	end := map[int]int64{0: 10, 1: 10, 2: 10}
	a.once(t, nil, end)
	b.once(t, nil, end)
	full := 0
	for _, s := range fetches.seen() {
		if s.epoch == 0 {
			full++
		}
	}
	t.Logf("%d fetch requests, %d of them opening a session", len(fetches.seen()), full)
	if full < 4 {
		t.Errorf("%d requests opened a session; with one slot for two consumers the broker should have evicted them again and again", full)
	}
}

// TestConsumerKeepsItsFetchSessionsAcrossRebalances: a member's next
// generation goes on with the fetch session the last one left, as Kafka's
// consumer does, instead of opening another. With a fetcher per
// generation that opened its own, each rebalance left a session behind on
// every broker, which a real broker keeps for two minutes in a cache
// shared by all its clients (1,000 by default): an outside tester's crash
// loop made 189 generations in 13 minutes.
func TestConsumerKeepsItsFetchSessionsAcrossRebalances(t *testing.T) {
	const partitions = 6
	c, p := setup(t, "keep", partitions)
	fetches := logFetches(c)
	a, b := &handled{}, &handled{}
	runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "keep-g", Topics: []string{"keep"}}, a.handle)
	poll.Until(t, 30*time.Second, "a first fetch", func() bool { return len(fetches.seen()) > 0 })
	// A second member: the first gives up half its partitions in a new
	// generation, and fetches the other half on.
	cons, _ := runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "keep-g", Topics: []string{"keep"}}, b.handle)
	poll.Until(t, 30*time.Second, "the second member in the group", cons.Joined)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 60 {
		part := i % partitions
		if err := p.Publish(ctx, queue.Message{Topic: "keep", Key: keyFor(part, partitions, "keep"), Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 30*time.Second, "all 60 records handled", func() bool { return a.count()+b.count() >= 60 })
	if a.count() == 0 || b.count() == 0 {
		t.Fatalf("members handled %d and %d records: the group never shared its partitions", a.count(), b.count())
	}
	// A request at epoch 0 opens a session; with the id of one it holds,
	// it closes that one first (a member restarts its session when the
	// generation's end cancels the request it had out). Only the
	// members' first requests may open one without closing another.
	opened, replaced := 0, 0
	for _, s := range fetches.seen() {
		switch {
		case s.epoch == 0 && s.id == 0:
			opened++
		case s.epoch == 0:
			replaced++
		}
	}
	t.Logf("%d fetch requests: %d opened a session, %d replaced one", len(fetches.seen()), opened, replaced)
	if opened != 2 {
		t.Errorf("%d fetch requests opened a session without closing one, want 2: one per member; the others were left on the broker", opened)
	}
}

// TestConsumerClosesItsFetchSessionsWhenItStops: a consumer that stops
// sends each broker a fetch at the final epoch (-1), which frees its
// session there at once, as Kafka's consumer does when it closes.
func TestConsumerClosesItsFetchSessionsWhenItStops(t *testing.T) {
	c, _ := setup(t, "close", 3)
	fetches := logFetches(c)
	_, stop := runConsumer(t, kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "close-g", Topics: []string{"close"}}, (&handled{}).handle)
	poll.Until(t, 30*time.Second, "an incremental fetch", func() bool {
		for _, s := range fetches.seen() {
			if s.epoch > 0 {
				return true
			}
		}
		return false
	})
	stop()
	got := fetches.seen()
	if last := got[len(got)-1]; last.epoch != -1 || last.named != 1 {
		t.Errorf("the last fetch request was at epoch %d naming %d partitions, want the final epoch -1 naming one (to reach the session's broker)", last.epoch, last.named)
	}
}
