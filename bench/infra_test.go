package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// TestRTTProxy: with a round trip asked for, a Redis PING and a Kafka
// metadata request through the infrastructure process's proxies take at
// least that round trip, and kfake advertises the proxy's address, so a
// client that learns brokers from metadata stays behind the proxy. It
// asserts the lower bound only; the medians are logged, not judged.
func TestRTTProxy(t *testing.T) {
	env := infraEnv(t)
	ctx := context.Background()

	measure := func(name string, f func() error) time.Duration {
		t.Helper()
		var ds []time.Duration
		for i := 0; i < 30; i++ {
			t0 := time.Now()
			if err := f(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			ds = append(ds, time.Since(t0))
		}
		sortDurations(ds)
		t.Logf("%s: min %v, median %v", name, ds[0], ds[len(ds)/2])
		return ds[0]
	}
	kafkaMeta := func(in *infra) (func() error, func()) {
		// One connection, a metadata request each time (kafka.Client
		// would answer from its cache).
		conn, err := kafka.DialContext(ctx, "tcp", in.Brokers()[0])
		if err != nil {
			t.Fatal(err)
		}
		return func() error {
			brokers, err := conn.Brokers()
			if err != nil {
				return err
			}
			for _, b := range brokers {
				if addr := net.JoinHostPort(b.Host, strconv.Itoa(b.Port)); addr != in.Brokers()[0] {
					t.Errorf("kfake advertises %s, clients bootstrap from %s", addr, in.Brokers()[0])
				}
			}
			return nil
		}, func() { conn.Close() }
	}
	redisPing := func(in *infra) (func() error, func()) {
		c := redis.NewClient(in.redisOptions())
		if err := c.Ping(ctx).Err(); err != nil { // connect outside the timing
			t.Fatal(err)
		}
		return func() error { return c.Ping(ctx).Err() }, func() { c.Close() }
	}

	direct, err := env.cluster()
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	ping, closePing := redisPing(direct)
	defer closePing()
	dRedis := measure("redis PING, loopback", ping)
	meta, closeMeta := kafkaMeta(direct)
	defer closeMeta()
	dKafka := measure("kafka metadata, loopback", meta)

	for _, rtt := range []time.Duration{500 * time.Microsecond, 2 * time.Millisecond} {
		env.Opts.RTT = rtt
		proxied, err := env.cluster()
		if err != nil {
			t.Fatal(err)
		}
		defer proxied.Close()
		if proxied.ready.RedisURL == "" {
			t.Fatal("no Redis proxy with a round trip")
		}
		ping, closePing := redisPing(proxied)
		defer closePing()
		if got := measure(fmt.Sprintf("redis PING, %v RTT", rtt), ping); got < rtt {
			t.Errorf("a PING through the proxy took %v, less than the %v round trip (loopback %v)", got, rtt, dRedis)
		}
		meta, closeMeta := kafkaMeta(proxied)
		defer closeMeta()
		if got := measure(fmt.Sprintf("kafka metadata, %v RTT", rtt), meta); got < rtt {
			t.Errorf("a metadata request through the proxy took %v, less than the %v round trip (loopback %v)", got, rtt, dKafka)
		}
	}
}

// TestScenarioWithRTT: a scenario at a small scale with a round trip
// completes and says which round trip it ran with.
func TestScenarioWithRTT(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Kafka, Redis and the proxies")
	}
	profiles := ""
	if f := flag.Lookup("test.cpuprofile"); f == nil || f.Value.String() == "" {
		profiles = t.TempDir()
	}
	env, closeEnv, err := NewEnv(Options{Scale: 0.01, Log: t.Logf, RTT: 500 * time.Microsecond, WindowProfiles: profiles})
	if err != nil {
		t.Fatal(err)
	}
	defer closeEnv()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	list, err := Lookup("pipeline")
	if err != nil {
		t.Fatal(err)
	}
	var results []Result
	if err := Run(ctx, env, WithRTT(list, env.Opts.RTT), func(r Result) { results = append(results, r) }); err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 {
		t.Fatalf("%d results", len(results))
	}
	r := results[0]
	b, _ := json.Marshal(r)
	t.Logf("%s", b)
	if r.RTTms != 0.5 || !json.Valid(b) || !containsKey(b, "rtt_ms") {
		t.Errorf("rtt_ms: %s", b)
	}
	if r.Messages <= 0 || r.Seconds <= 0 || r.BaselineSeconds <= 0 || r.CPUMicrosPerMessage == nil || *r.CPUMicrosPerMessage <= 0 {
		t.Errorf("incomplete result %s", b)
	}
	if got := RowName(r); got != "pipeline @0.5ms RTT" {
		t.Errorf("row name %q", got)
	}
	if profiles != "" { // --window-profiles names the round trip
		for _, name := range []string{"pipeline-herald-rtt0.5ms.pprof", "pipeline-floor-rtt0.5ms.pprof"} {
			if st, err := os.Stat(filepath.Join(profiles, name)); err != nil || st.Size() == 0 {
				t.Errorf("window profile %s: %v", name, err)
			}
		}
	}
	// A scenario without a round-trip form refuses one.
	slow, _ := Lookup("backlog")
	if len(WithRTT(slow, env.Opts.RTT)) != 0 {
		t.Error("backlog offered a round trip")
	}
	if err := Run(ctx, env, slow, func(Result) {}); err == nil {
		t.Error("backlog ran with a round trip")
	}
}

func containsKey(b []byte, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	_, ok := m[key]
	return ok
}

// The infrastructure process counts the fetch and produce requests its
// broker handles, and tells the bench process on request: one Publish to
// an idle producer is one produce request, one ReadBatch one fetch.
func TestInfraCountsRequests(t *testing.T) {
	in, err := infraEnv(t).cluster()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic = "counted"
	if err := kafkarun.EnsureTopics(ctx, in.Brokers(), nil, []kafkarun.TopicSpec{{Name: topic, Partitions: 1, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	p := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: in.Brokers()})
	defer p.Close()
	if err := p.Publish(ctx, queue.Message{Topic: topic, Value: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	before, err := in.requests()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := p.Publish(ctx, queue.Message{Topic: topic, Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := kafka.DialLeader(ctx, "tcp", in.Brokers()[0], topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	batch := conn.ReadBatch(1, 1<<20)
	if _, err := batch.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	batch.Close()
	after, err := in.requests()
	if err != nil {
		t.Fatal(err)
	}
	if got := after.sub(before); got != (requestCounts{Fetch: 1, Produce: 3}) {
		t.Errorf("counted %+v for three publishes and one fetch, want {Fetch:1 Produce:3}", got)
	}
}

// infraEnv is an Env for a test that starts infrastructure processes,
// closed when the test ends; it skips the test in -short mode.
func infraEnv(t *testing.T) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Kafka and Redis processes")
	}
	env, closeEnv, err := NewEnv(Options{Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeEnv)
	return env
}
