// Package bench is `herald bench`: the scenarios that measure herald's
// runtime against the anchors of issue 3, each against a baseline measured in
// the same run, on the same Kafka cluster (kfake, in a process of its own,
// see infra.go) and a real redis-server. With Options.RTT (herald bench
// --rtt), the scenarios that take it route every Kafka and Redis
// connection of herald and of its baseline through proxies adding that
// round trip.
//
// Every scenario reports a Result; the runner prints them as JSON lines or
// as the Markdown table `make bench` writes into BENCHMARKS.md. Nothing here
// asserts a speed: a benchmark reports, a test asserts correctness.
//
// Where a baseline would take minutes at full size (the one-at-a-time loops
// are 50× to 1000× slower by design), it runs on a stated subset of the
// same input and its time is extrapolated per message; the Result says so
// in BaselineNote.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/rpipe"
	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/templates"
)

// Result is one scenario's figures. Pointer fields are omitted when they do
// not apply to the scenario.
type Result struct {
	Scenario        string   `json:"scenario"`
	Messages        int      `json:"messages"`
	Seconds         float64  `json:"seconds"`
	BaselineSeconds float64  `json:"baseline_seconds"`
	RatioVsBaseline float64  `json:"ratio_vs_baseline"`
	FloorSeconds    *float64 `json:"floor_seconds,omitempty"`
	Efficiency      *float64 `json:"efficiency,omitempty"`
	NotificationsPS *float64 `json:"notifications_per_sec,omitempty"`
	P50ms           *float64 `json:"p50_ms,omitempty"`
	P99ms           *float64 `json:"p99_ms,omitempty"`
	PeakRSSMB       *float64 `json:"peak_rss_mb,omitempty"`

	// BaselineP50ms and BaselineP99ms are the baseline's latencies (latency).
	BaselineP50ms *float64 `json:"baseline_p50_ms,omitempty"`
	BaselineP99ms *float64 `json:"baseline_p99_ms,omitempty"`
	// BaselineMessages is how many messages the baseline really handled;
	// BaselineSeconds is extrapolated from them when fewer than Messages.
	BaselineMessages int    `json:"baseline_messages"`
	BaselineNote     string `json:"baseline_note,omitempty"`
	// CPUMicrosPerMessage is the CPU time (user + system) the measured
	// process spent per message: what caps throughput once waits are
	// hidden, whatever else is running on the machine.
	CPUMicrosPerMessage *float64 `json:"cpu_us_per_message,omitempty"`
	// GCMicrosPerMessage is the Go runtime's estimate of its garbage
	// collector's CPU in the measured window, per message: an overestimate,
	// counted as each collection ends, so not a part to subtract from
	// CPUMicrosPerMessage (pipeline only).
	GCMicrosPerMessage *float64 `json:"gc_cpu_us_per_message,omitempty"`
	// PlumbingMicrosPerMessage is the CPU per message of stand-ins for
	// herald's stages moving the same records through the same Kafka and
	// Redis calls without the stages' own logic, measured in the same run
	// (pipeline only; plumbing.go).
	PlumbingMicrosPerMessage *float64 `json:"plumbing_cpu_us_per_message,omitempty"`
	// AllocsPerMessage and AllocBytesPerMessage are the heap allocations
	// the measured process made in herald's window, per message, and their
	// bytes (pipeline only): what the collector and the allocator's CPU
	// follow, counted rather than timed, so that they hold still while the
	// machine's speed drifts. The window's other goroutines (the bench's
	// sinks and tracker) allocate the same for any build.
	AllocsPerMessage     *float64 `json:"allocs_per_message,omitempty"`
	AllocBytesPerMessage *float64 `json:"alloc_bytes_per_message,omitempty"`
	// KafkaFetchesPerMessage and KafkaProducesPerMessage are the fetch
	// and produce requests the broker stand-in handled in herald's window,
	// per message (pipeline and latency; the latency window's include the
	// events' producer's): round trips, counted, so they hold still while
	// the machine's speed drifts.
	KafkaFetchesPerMessage  *float64 `json:"kafka_fetches_per_message,omitempty"`
	KafkaProducesPerMessage *float64 `json:"kafka_produces_per_message,omitempty"`
	// RedisRoundTripsPerMessage is the same for herald's Redis hot path:
	// the pipelines of its idempotency store and suppression list, and its
	// preference lookups (pipeline and latency).
	RedisRoundTripsPerMessage *float64 `json:"redis_round_trips_per_message,omitempty"`
	// RTTms is the round trip the scenario's Kafka and Redis connections
	// had added (herald bench --rtt); 0 is loopback.
	RTTms float64 `json:"rtt_ms"`
	// EventsPS is the latency scenario's rate when --rate set another
	// than the 2,000 events/s its target is set for (0 otherwise). Such a
	// row is a measurement (NotJudged): its Met is false because no
	// target applies, not because one was missed.
	EventsPS int `json:"events_per_sec,omitempty"`
	// Target is the target in words; Met whether this run met it.
	Target string `json:"target"`
	Met    bool   `json:"met"`
	// Note says anything a reader needs to interpret the row.
	Note string `json:"note,omitempty"`

	// The scheduled scenario's figures. Scheduled is how many reminders
	// wait; IndexPerSec how fast the scheduler indexed them;
	// RSSAfterIndexMB the scheduler's VmRSS then; RedisBytesPerEntry
	// Redis used_memory per waiting reminder; Lateness* is due time →
	// arrival on the channel topic (P50ms and P99ms repeat it);
	// Duplicates and Missing count the firing set's reminders that arrived
	// twice or never; CancelMicros is wall time per cancellation at
	// CancelsPerSec.
	Scheduled          int      `json:"scheduled,omitempty"`
	IndexPerSec        *float64 `json:"index_per_sec,omitempty"`
	RSSAfterIndexMB    *float64 `json:"rss_after_index_mb,omitempty"`
	RedisBytesPerEntry *float64 `json:"redis_bytes_per_entry,omitempty"`
	LatenessP50ms      *float64 `json:"lateness_p50_ms,omitempty"`
	LatenessP99ms      *float64 `json:"lateness_p99_ms,omitempty"`
	LatenessMaxms      *float64 `json:"lateness_max_ms,omitempty"`
	Duplicates         *int     `json:"duplicates,omitempty"`
	Missing            *int     `json:"missing,omitempty"`
	CancelMicros       *float64 `json:"cancel_us,omitempty"`
	CancelsPerSec      *float64 `json:"cancels_per_sec,omitempty"`
	// ReplaceMicros is wall time per replace record of a first
	// confirmation (schedule: replace:), ReplaceCPUMicros the scheduler's
	// and redis-server's CPU per one.
	ReplaceMicros    *float64 `json:"replace_us,omitempty"`
	ReplaceCPUMicros *float64 `json:"replace_cpu_us,omitempty"`
}

// NotJudged reports whether r is a measurement its target does not apply
// to: the latency scenario at another rate than its target's (--rate).
func (r Result) NotJudged() bool { return r.EventsPS > 0 }

func f64(v float64) *float64 { return &v }

// window labels the calling goroutine bench_window=name, and with it every
// goroutine it starts until end runs (goroutines inherit their parent's
// labels), so that a CPU profile of the process (herald bench
// --cpuprofile) can be cut to one measured window:
//
//	go tool pprof -tagfocus=bench_window=herald herald FILE
//
// The runtime's own goroutines (the collector's workers) carry no label.
func window(ctx context.Context, name string) (end func()) {
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("bench_window", name)))
	return func() { pprof.SetGoroutineLabels(ctx) }
}

// cpuTime is the CPU time this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gcCPU is the CPU the garbage collector has spent in this process, as the
// Go runtime estimates it: an overestimate, updated as each collection
// ends.
func gcCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

// heapAllocs is how many heap allocations this process has made, and their
// bytes (the runtime's counters, tiny objects included).
func heapAllocs() (objects, bytes uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/tiny/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	for _, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return 0, 0
		}
	}
	return s[0].Value.Uint64() + s[1].Value.Uint64(), s[2].Value.Uint64()
}

// Options tune a run. The zero value is the full size.
type Options struct {
	// Scale multiplies message counts and durations (1 = the sizes).
	// Tests use a small scale; figures in BENCHMARKS.md are at 1.
	Scale float64
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
	// LatencyRate, when set, is the latency scenario's events per second
	// instead of 2,000, the rate its target is set for: the target is
	// judged only at that rate. CPU per notification depends on the rate
	// (fewer records share each round trip), which docs/scale.md needs
	// at a pod's share of a fleet's traffic.
	LatencyRate int
	// Scheduled, when set, is how many reminders wait in the scheduled
	// scenario instead of 1,000,000 × Scale (HERALD_BENCH_SCHEDULED sets
	// it for herald bench).
	Scheduled int
	// RTT is the round trip added to every Kafka and Redis connection of
	// herald and of its baseline, through proxies in the infrastructure
	// process (0 = loopback). Only scenarios with Scenario.RTT take one.
	RTT time.Duration
	// WindowProfiles, when set, is a directory that gets a CPU profile of
	// the whole bench process over each measured window of the pipeline
	// and latency scenarios: herald's (<scenario>-herald.pprof) and the
	// plumbing floor's (pipeline-floor.pprof), with "-rtt0.5ms" (the round
	// trip) before the extension when one was added. Unlike a profile of
	// the whole run filtered by the bench_window label, it has the
	// goroutines no label reaches (the Kafka connections', the Redis
	// flusher's, the collector's) and nothing from the setup or the
	// baselines. It cannot be combined with another CPU profile of the
	// process.
	WindowProfiles string
	// WindowTraces, when set, is a directory that gets an execution trace
	// (runtime/trace) of the whole bench process over each measured
	// window, named as WindowProfiles' files with ".trace". In the latency
	// scenario each notification slower than the target is logged in it
	// (SlowLogCategory), so that go run ./internal/tools/tracegc can line
	// the slow ones up with the collector's phases.
	WindowTraces string
}

// profileWindow starts the CPU profile (Options.WindowProfiles) and the
// execution trace (Options.WindowTraces) of window name of the current
// scenario; stop ends them. Without a directory it does nothing. A profile
// or trace that cannot start is logged, not fatal: the scenario's figures
// do not depend on it.
func (e *Env) profileWindow(scenario, name string) (stop func()) {
	file := scenario + "-" + name
	if e.Opts.RTT > 0 {
		file += "-rtt" + strconv.FormatFloat(float64(e.Opts.RTT)/float64(time.Millisecond), 'f', -1, 64) + "ms"
	}
	if e.Opts.WindowProfiles == "" && e.Opts.WindowTraces == "" {
		return func() {}
	}
	if e.windows == nil {
		e.windows = map[string]int{}
	}
	e.windows[file]++
	if n := e.windows[file]; n > 1 {
		file += "-" + strconv.Itoa(n) // the scenario's second run in this process
	}
	var stops []func()
	if e.Opts.WindowProfiles != "" {
		if s := e.windowFile(e.Opts.WindowProfiles, file+".pprof", pprof.StartCPUProfile, pprof.StopCPUProfile); s != nil {
			stops = append(stops, s)
		}
	}
	if e.Opts.WindowTraces != "" {
		if s := e.windowFile(e.Opts.WindowTraces, file+".trace", trace.Start, trace.Stop); s != nil {
			stops = append(stops, s)
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, s := range stops {
				s()
			}
		})
	}
}

// windowFile starts writing one window's profile or trace into dir/name,
// and returns what stops it (nil when it could not start).
func (e *Env) windowFile(dir, name string, start func(io.Writer) error, stop func()) func() {
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err == nil {
		if err = start(f); err != nil {
			f.Close()
			os.Remove(path) // an empty file would pass for a profile
		}
	}
	if err != nil {
		e.Opts.logf("bench: %s: not recorded: %v", name, err)
		return nil
	}
	return func() {
		stop()
		if err := f.Close(); err != nil {
			e.Opts.logf("bench: %s: %v", path, err)
		}
	}
}

func (o *Options) scaled(n int) int {
	if o.Scale <= 0 || o.Scale == 1 {
		return n
	}
	return max(1, int(float64(n)*o.Scale))
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

// Scenario is one named measurement.
type Scenario struct {
	Name string
	// Doc is the workload in one line.
	Doc string
	Run func(ctx context.Context, env *Env) (Result, error)
	// RTT says the scenario runs with Options.RTT: every Kafka and Redis
	// connection of herald and of its baseline goes through the proxies.
	RTT bool
}

// Scenarios are every scenario, in the order `make bench` runs them.
var Scenarios = []Scenario{
	{"anchor", "10,000 msgs, 1 partition, 1,000 keys, handler 0–5 ms, concurrency 100 (Parallel Consumer's published workload)", runAnchor, true},
	{"pipeline", "events → dispatcher → channel topics → channel workers → zero-latency sinks, one process", runPipeline, true},
	{"latency", "steady 2,000 events/s for 20 s; produce → sink receipt", runLatency, true},
	{"slow-provider", "sinks take 50 ms per send, 6 partitions per channel topic, one process", runSlowProvider, false},
	{"backlog", "1,000,000 queued notifications drained by one worker process", runBacklog, false},
	{"live-fanout", "one gateway process holding ~20,000 SSE streams; in-app notifications produced at 2,000/s reach their person's stream", runLiveFanout, false},
	{"flows-compete", "in-app notifications at 200/s, alone and under a 100,000-update attendance flood, one inapp process", runFlowsCompete, false},
	{"scheduled", "1,000,000 reminders waiting days ahead (HERALD_BENCH_SCHEDULED sets another count) in one scheduler process; 20,000 more due at 2,000/s; 10,000 cancelled", runScheduled, false},
}

// Lookup returns the scenarios named in a comma-separated list ("" = all).
func Lookup(list string) ([]Scenario, error) {
	if strings.TrimSpace(list) == "" {
		return Scenarios, nil
	}
	var out []Scenario
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range Scenarios {
			if s.Name == name {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			var names []string
			for _, s := range Scenarios {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}

// Env is what every scenario shares: a real redis-server, the templates,
// and a way to start a fresh Kafka cluster in its own process (cluster, in
// infra.go).
type Env struct {
	Opts      Options
	Redis     *redistest.Server
	Templates *templates.Set
	// Self is the herald executable, re-executed for scenarios that measure
	// a separate worker process.
	Self string
	// windows counts each window's profiles and traces, so that a scenario
	// run twice (--scenario pipeline,pipeline) writes files of its own the
	// second time rather than over the first's.
	windows map[string]int
}

// NewEnv starts redis-server in a temporary directory.
func NewEnv(opts Options) (*Env, func(), error) {
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, nil, err
	}
	srv, err := redistest.StartProcess(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("bench needs redis-server on PATH (make deps installs it): %w", err)
	}
	tpl, err := templates.Embedded()
	if err != nil {
		srv.Close()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	self, err := os.Executable()
	if err != nil {
		srv.Close()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	env := &Env{Opts: opts, Redis: srv, Templates: tpl, Self: self}
	return env, func() { srv.Close(); os.RemoveAll(dir) }, nil
}

// store returns a Redis idempotency store with the given batch bound
// (1 = one round trip per call, the naive baseline's store) after
// flushing every key a previous run left. opts, when not nil, is where
// the client connects (an infrastructure process's Redis proxy);
// redis-server's socket otherwise.
func (e *Env) store(batchMax int, opts *redis.Options) (dedupe.Store, *redis.Client, error) {
	client, err := e.freshClient(opts)
	if err != nil {
		return nil, nil, err
	}
	return dedupe.NewRedis(client, dedupe.Options{BatchMax: batchMax}), client, nil
}

// freshClient flushes Redis and returns a client with opts (nil: Redis's
// own).
func (e *Env) freshClient(opts *redis.Options) (*redis.Client, error) {
	if err := e.Redis.FlushAll(); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = e.Redis.Options()
	}
	return redis.NewClient(opts), nil
}

// heraldRedis flushes Redis and returns herald's stores as herald run
// makes them on one client (sharedRedis).
func (e *Env) heraldRedis(opts *redis.Options) (*heraldStores, error) {
	client, err := e.freshClient(opts)
	if err != nil {
		return nil, err
	}
	return sharedRedis(client), nil
}

// heraldStores are the Redis stores herald run makes on one client: the
// idempotency store and the suppression list, sharing their pipelines, and
// the people's preferences the dispatcher looks up for every event.
type heraldStores struct {
	store dedupe.Store
	list  *suppress.Redis
	prefs *prefs.Redis
	// roundTrips counts the round trips of herald's Redis hot path: the
	// shared pipelines (idempotency and suppression) and the preference
	// lookups.
	roundTrips func() uint64
	// close closes the stores and the client.
	close func()
}

// sharedRedis is heraldRedis on client.
func sharedRedis(client redis.UniversalClient) *heraldStores {
	pipes := rpipe.New(client, 0)
	store := dedupe.NewRedis(client, dedupe.Options{Pipes: pipes})
	list := suppress.NewRedisOn(pipes, "", nil)
	ps := prefs.NewRedis(client, "")
	trips := func() uint64 { return pipes.RoundTrips() + ps.RoundTrips() }
	return &heraldStores{store: store, list: list, prefs: ps, roundTrips: trips, close: func() {
		_ = ps.Close()
		list.Close()
		store.Close()
		pipes.Close()
		client.Close()
	}}
}

// WithRTT returns the scenarios of list that run with a round trip (all of
// them for rtt 0).
func WithRTT(list []Scenario, rtt time.Duration) []Scenario {
	if rtt <= 0 {
		return list
	}
	var out []Scenario
	for _, s := range list {
		if s.RTT {
			out = append(out, s)
		}
	}
	return out
}

// banner is the line announcing scenario s. Doc gives the sizes at
// --scale 1; at another scale it says by how much this run multiplies
// them (an outside tester read "20 s" from a run at --scale 0.1).
func banner(s Scenario, o Options) string {
	name := s.Name
	if o.RTT > 0 {
		name += fmt.Sprintf(" @%v RTT", o.RTT)
	}
	line := fmt.Sprintf("bench: %s — %s", name, s.Doc)
	if sc := scaleOr1(o.Scale); sc != 1 {
		line += fmt.Sprintf(" (at --scale 1; this run's counts and durations ×%g)", sc)
	}
	return line
}

// Run runs scenarios in order, with env.Opts.RTT, and hands each result
// to emit as it is ready.
func Run(ctx context.Context, env *Env, scenarios []Scenario, emit func(Result)) error {
	for _, s := range scenarios {
		if env.Opts.RTT > 0 && !s.RTT {
			return fmt.Errorf("scenario %s runs on loopback only (--rtt applies to %s)", s.Name, strings.Join(RTTScenarios(), ", "))
		}
		env.Opts.logf("%s", banner(s, env.Opts))
		t0 := time.Now()
		r, err := s.Run(ctx, env)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", s.Name, err)
		}
		r.Scenario = s.Name
		r.RTTms = float64(env.Opts.RTT.Microseconds()) / 1000
		env.Opts.logf("bench: %s done in %v", s.Name, time.Since(t0).Round(time.Millisecond))
		emit(r)
	}
	return nil
}

// RTTScenarios are the names of the scenarios that take --rtt.
func RTTScenarios() []string {
	var out []string
	for _, s := range Scenarios {
		if s.RTT {
			out = append(out, s.Name)
		}
	}
	return out
}

// percentile returns the p-th percentile (0–100) of sorted durations in ms.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return float64(sorted[i]) / float64(time.Millisecond)
}

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}

func round(v float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
