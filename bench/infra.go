package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	toxistream "github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gymhq/herald/internal/kafkatest"
)

// InfraFlag is the hidden `herald bench` flag that turns the process into
// the scenario's infrastructure: the broker stand-in (kfake) and, when a
// round trip is asked for, the latency-injecting proxies in front of it and
// of redis-server. It runs apart from the bench process so that herald's
// CPU there is herald's own: the broker's work, and the proxies', is
// counted in this process, which nothing measures.
const InfraFlag = "--infra-process"

// infraSpec is what the bench process tells the infrastructure process.
type infraSpec struct {
	// RTTMicros is the round trip the proxies add (half each way); 0 runs
	// no proxy and hands out kfake's and redis-server's own addresses.
	RTTMicros int64 `json:"rtt_us"`
	// RedisNetwork and RedisAddr are redis-server's ("unix" and its socket).
	RedisNetwork string `json:"redis_network"`
	RedisAddr    string `json:"redis_addr"`
}

// requestCounts are the Kafka requests the infrastructure process's kfake
// has handled since it started, of the two kinds a record's trip is made
// of: what a change that batches differently changes, counted, so the
// figure holds still while the machine's speed drifts.
type requestCounts struct {
	Fetch   int64 `json:"fetch"`
	Produce int64 `json:"produce"`
}

// requestsCommand, a line on the infrastructure process's stdin, asks for
// its requestCounts as a line of JSON on its stdout.
const requestsCommand = "requests"

// infraReady is the infrastructure process's first line: where clients
// connect.
type infraReady struct {
	Brokers []string `json:"brokers"`
	// RedisURL is the proxy's redis:// URL with a round trip, "" without
	// (clients use redis-server's own socket).
	RedisURL string `json:"redis_url,omitempty"`
}

// infra is a running infrastructure process as the bench process sees it.
type infra struct {
	ready infraReady
	rtt   time.Duration
	env   *Env
	c     *child
	mu    sync.Mutex // one requests exchange at a time
	once  sync.Once
}

// cluster starts a fresh infrastructure process: a one-broker kfake
// (kafkatest's defaults) and, with Options.RTT, the proxies. Each scenario
// gets its own, so one scenario's records never sit in memory during the
// next.
func (e *Env) cluster() (*infra, error) {
	network, addr := "unix", e.Redis.Addr()
	if !strings.HasPrefix(e.Redis.URL(), "unix://") {
		network = "tcp"
	}
	c, err := e.startChild(context.Background(), InfraFlag, infraSpec{
		RTTMicros: e.Opts.RTT.Microseconds(), RedisNetwork: network, RedisAddr: addr,
	})
	if err != nil {
		return nil, err
	}
	in := &infra{rtt: e.Opts.RTT, env: e, c: c}
	line, err := c.line()
	if err == nil {
		err = json.Unmarshal([]byte(line), &in.ready)
	}
	if err != nil || len(in.ready.Brokers) == 0 {
		in.Close()
		return nil, fmt.Errorf("infrastructure process: %q: %v", line, err)
	}
	return in, nil
}

// Brokers are the addresses Kafka clients bootstrap from (the proxy's with
// a round trip; kfake advertises the same ones in its metadata).
func (in *infra) Brokers() []string { return in.ready.Brokers }

// RedisURL is where herald's and the baseline's Redis clients connect:
// the proxy with a round trip, redis-server's socket without.
func (in *infra) RedisURL() string {
	if in.ready.RedisURL != "" {
		return in.ready.RedisURL
	}
	return in.env.Redis.URL()
}

// redisOptions are go-redis options for RedisURL.
func (in *infra) redisOptions() *redis.Options {
	if in.ready.RedisURL == "" {
		return in.env.Redis.Options()
	}
	opt, err := redis.ParseURL(in.ready.RedisURL)
	if err != nil {
		panic(err) // the child printed a URL it built itself
	}
	return opt
}

// requests asks the process for the Kafka requests it has handled so far.
func (in *infra) requests() (requestCounts, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	var rc requestCounts
	if _, err := io.WriteString(in.c.stdin, requestsCommand+"\n"); err != nil {
		return rc, fmt.Errorf("infrastructure process: ask for request counts: %w", err)
	}
	line, err := in.c.line()
	if err == nil {
		err = json.Unmarshal([]byte(line), &rc)
	}
	if err != nil {
		return rc, fmt.Errorf("infrastructure process: request counts %q: %w", line, err)
	}
	return rc, nil
}

// sub is c less an earlier count.
func (c requestCounts) sub(before requestCounts) requestCounts {
	return requestCounts{Fetch: c.Fetch - before.Fetch, Produce: c.Produce - before.Produce}
}

// cpu is the CPU time the process has used so far.
func (in *infra) cpu() time.Duration { return procCPU(in.c.cmd.Process.Pid) }

// Close stops the process (its cluster and proxies).
func (in *infra) Close() {
	in.once.Do(func() { _, _ = in.c.finish() })
}

// infraMain runs the infrastructure until its stdin closes.
func infraMain(arg string) int {
	var spec infraSpec
	if err := json.Unmarshal([]byte(arg), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "herald bench %s: bad spec: %v\n", InfraFlag, err)
		return 2
	}
	rtt := time.Duration(spec.RTTMicros) * time.Microsecond
	var proxies []*rttProxy
	defer func() {
		for _, p := range proxies {
			p.Close()
		}
	}()
	var opts []kfake.Opt
	if rtt > 0 {
		// kfake tells clients its brokers' addresses in metadata and
		// FindCoordinator answers: its listener reports the proxy's address
		// as its own, so every connection a client makes goes through it.
		opts = append(opts, kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			p, err := newRTTProxy("kafka", rtt, network, ln.Addr().String())
			if err != nil {
				ln.Close()
				return nil, err
			}
			proxies = append(proxies, p)
			return &advertised{Listener: ln, addr: p.Addr()}, nil
		}))
	}
	kc, err := kafkatest.New(opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald bench %s: %v\n", InfraFlag, err)
		return 1
	}
	defer kc.Close()
	var fetches, produces atomic.Int64
	kc.Control(func(r kmsg.Request) (kmsg.Response, error, bool) {
		switch r.Key() {
		case int16(kmsg.Fetch):
			fetches.Add(1)
		case int16(kmsg.Produce):
			produces.Add(1)
		}
		return nil, nil, false // counted, and handled as usual
	})
	ready := infraReady{Brokers: kc.Brokers()}
	if rtt > 0 {
		p, err := newRTTProxy("redis", rtt, spec.RedisNetwork, spec.RedisAddr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "herald bench %s: %v\n", InfraFlag, err)
			return 1
		}
		proxies = append(proxies, p)
		ready.RedisURL = "redis://" + p.Addr().String()
	}
	b, _ := json.Marshal(ready)
	fmt.Println(string(b))
	// Until the bench process closes stdin, answering its requests.
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == requestsCommand {
			b, _ := json.Marshal(requestCounts{Fetch: fetches.Load(), Produce: produces.Load()})
			fmt.Println(string(b))
		}
	}
	return 0
}

// advertised is kfake's real listener reporting the proxy's address.
type advertised struct {
	net.Listener
	addr net.Addr
}

func (a *advertised) Addr() net.Addr { return a.addr }

// rttProxy is a TCP proxy on 127.0.0.1 that adds a round trip to every
// connection through it: toxiproxy's links (a chain of toxics per
// direction) with a latency toxic of half the round trip upstream and
// half downstream. It accepts and dials itself, rather than through
// toxiproxy.Proxy's server, so that its upstream may be a Unix socket
// (redis-server's).
type rttProxy struct {
	ln       net.Listener
	proxy    *toxiproxy.Proxy
	server   *toxiproxy.ApiServer
	network  string
	upstream string
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

func newRTTProxy(name string, rtt time.Duration, network, upstream string) (*rttProxy, error) {
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	proxy := toxiproxy.NewProxy(server, name, "127.0.0.1:0", upstream)
	half := (rtt / 2).Microseconds()
	for _, dir := range []string{"upstream", "downstream"} {
		spec := fmt.Sprintf(`{"name":"rtt_%s","type":%q,"stream":%q,"toxicity":1,"attributes":{"micros":%d}}`, dir, rttToxicName, dir, half)
		if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
			return nil, fmt.Errorf("%s proxy: %w", name, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &rttProxy{ln: ln, proxy: proxy, server: server, network: network, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is where clients connect.
func (p *rttProxy) Addr() net.Addr { return p.ln.Addr() }

func (p *rttProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial(p.network, p.upstream)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client, up) {
			client.Close()
			up.Close()
			return
		}
		name := client.RemoteAddr().String()
		p.proxy.Toxics.StartLink(p.server, name+"upstream", client, up, toxistream.Upstream)
		p.proxy.Toxics.StartLink(p.server, name+"downstream", up, client, toxistream.Downstream)
	}
}

func (p *rttProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// Close stops accepting and closes every connection through the proxy.
func (p *rttProxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// rttToxicName is the toxic the proxies use: toxiproxy's own latency toxic
// takes whole milliseconds, and a round trip between pods in one zone is
// a fraction of one.
const rttToxicName = "herald_bench_latency_us"

func init() { toxics.Register(rttToxicName, new(microLatency)) }

// microLatency delays every chunk until Micros after toxiproxy read it, as
// toxics.LatencyToxic does in milliseconds: a delay in flight, not per
// chunk, so a stream of chunks is late by Micros, not Micros per chunk.
type microLatency struct {
	Micros int64 `json:"micros"`
}

// GetBufferSize lets chunks queue while earlier ones wait, as
// LatencyToxic does.
func (t *microLatency) GetBufferSize() int { return 1024 }

func (t *microLatency) Pipe(stub *toxics.ToxicStub) {
	delay := time.Duration(t.Micros) * time.Microsecond
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			wait := delay - time.Since(c.Timestamp)
			switch {
			case wait <= 0:
			case wait < preciseBelow:
				// Go's timers sleep at least a millisecond when the
				// process is otherwise idle (the runtime's poller waits
				// in whole milliseconds), which would turn a 0.25 ms
				// half round trip into 1 ms. nanosleep blocks only this
				// goroutine's thread, with the kernel's timer precision
				// (tens of µs); an interrupt waits for it to end.
				nanosleep(wait)
			default:
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-stub.Interrupt:
					stub.Output <- c // never drop data
					return
				}
			}
			stub.Output <- c
		}
	}
}

// preciseBelow is the wait under which microLatency sleeps in nanosleep
// rather than on a Go timer.
const preciseBelow = 5 * time.Millisecond

const prSetTimerSlack = 29 // PR_SET_TIMERSLACK, linux/prctl.h

func nanosleep(d time.Duration) {
	// The thread's timer slack (50 µs by default) would be added to
	// every wait; 1 µs keeps the half round trip what was asked.
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1000, 0)
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

// countRequests sets r's round-trip figures from rc and herald's Redis
// round trips, counted over a window of n messages, and says them for its
// note.
func (r *Result) countRequests(rc requestCounts, redisTrips uint64, n int) string {
	per := func(c int64) float64 { return float64(c) / float64(max(1, n)) }
	r.KafkaFetchesPerMessage = f64(round(per(rc.Fetch), 3))
	r.KafkaProducesPerMessage = f64(round(per(rc.Produce), 3))
	r.RedisRoundTripsPerMessage = f64(round(per(int64(redisTrips)), 3))
	return fmt.Sprintf("kfake handled %d fetch and %d produce requests in the window, %.3f and %.3f per message; herald's Redis stores made %d round trips, %.3f per message",
		rc.Fetch, rc.Produce, per(rc.Fetch), per(rc.Produce), redisTrips, per(int64(redisTrips)))
}

// infraWords says in a row's note where Kafka and Redis were, and the CPU
// the infrastructure process spent per message while herald ran (other,
// over n messages): not counted in the row's CPU figure, but taken from
// the same cores.
func infraWords(env *Env, other time.Duration, n int) string {
	per := other.Seconds() * 1e6 / float64(max(1, n))
	if env.Opts.RTT > 0 {
		ms := float64(env.Opts.RTT.Microseconds()) / 1000
		return fmt.Sprintf("kfake in its own process; every Kafka and Redis connection of herald and of the baseline through a toxiproxy link in that process adding a %g ms round trip (%g ms each way); that process (kfake and the proxies) used %.0f µs of CPU per message while herald ran, not counted in CPU µs/msg", ms, ms/2, per)
	}
	return fmt.Sprintf("kfake in its own process on loopback (%.0f µs of CPU per message while herald ran, not counted in CPU µs/msg), redis-server on its Unix socket", per)
}
