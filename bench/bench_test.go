package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"runtime/trace"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/internal/retaintest"
	"github.com/gymhq/herald/notification"
)

// TestMain lets this test binary stand in for herald when a scenario
// re-executes itself as a measured worker process.
func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == "bench" {
		if code, ok := Child(os.Args[2], os.Args[3]); ok {
			os.Exit(code)
		}
	}
	os.Exit(m.Run())
}

// TestScenarios runs every scenario at a small scale against the real
// servers and checks that each reports complete, consistent figures. It
// asserts no speed: that is what the scenarios measure, not what a test
// may depend on.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Kafka, Redis and worker processes")
	}
	// Kafka runs in an infrastructure process (infra.go) for every
	// scenario; its proxies only with a round trip (TestScenarioWithRTT).
	// herald bench --window-profiles, unless go test -cpuprofile holds the
	// process's one CPU profile already.
	profiles := ""
	if f := flag.Lookup("test.cpuprofile"); f == nil || f.Value.String() == "" {
		profiles = t.TempDir()
	}
	env, closeEnv, err := NewEnv(Options{Scale: 0.01, Log: t.Logf, WindowProfiles: profiles})
	if err != nil {
		t.Fatal(err)
	}
	defer closeEnv()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var results []Result
	if err := Run(ctx, env, Scenarios, func(r Result) { results = append(results, r) }); err != nil {
		t.Fatal(err)
	}
	// herald bench --window-profiles: one CPU profile per measured window,
	// each a complete pprof file (gzip, as runtime/pprof writes them).
	for _, name := range []string{"pipeline-herald", "pipeline-floor", "latency-herald"} {
		if profiles == "" {
			break
		}
		b, err := os.ReadFile(filepath.Join(profiles, name+".pprof"))
		if err != nil || len(b) < 20 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("window profile %s: %d bytes, %v", name, len(b), err)
		}
	}
	if len(results) != len(Scenarios) {
		t.Fatalf("%d results for %d scenarios", len(results), len(Scenarios))
	}
	for i, r := range results {
		b, _ := json.Marshal(r)
		t.Logf("%s", b)
		if r.Scenario != Scenarios[i].Name {
			t.Errorf("result %d is %q, want %q", i, r.Scenario, Scenarios[i].Name)
		}
		if r.Messages <= 0 || r.Seconds <= 0 || r.BaselineSeconds <= 0 || r.RatioVsBaseline <= 0 || r.BaselineMessages <= 0 || r.Target == "" {
			t.Errorf("%s: incomplete result %s", r.Scenario, b)
		}
		switch r.Scenario {
		case "anchor":
			if r.FloorSeconds == nil || r.Efficiency == nil || *r.FloorSeconds <= 0 {
				t.Errorf("anchor: no floor or efficiency: %s", b)
			}
		case "pipeline":
			// At this scale a figure can round to 0 (CPU is counted in
			// 10 ms ticks); it must be there, and never negative.
			if r.PlumbingMicrosPerMessage == nil || r.GCMicrosPerMessage == nil || *r.PlumbingMicrosPerMessage < 0 || *r.GCMicrosPerMessage < 0 ||
				!strings.Contains(r.Note, "plumbing floor") {
				t.Errorf("pipeline: no plumbing floor or GC share: %s", b)
			}
			// Every notification is decoded, rendered and logged on the
			// heap: far more than a few allocations and bytes each.
			if r.AllocsPerMessage == nil || r.AllocBytesPerMessage == nil || *r.AllocsPerMessage < 10 || *r.AllocBytesPerMessage < 1000 {
				t.Errorf("pipeline: allocations per notification missing or implausible: %s", b)
			}
			kafkaRequestsCounted(t, r, b)
		case "latency":
			kafkaRequestsCounted(t, r, b)
			if r.P50ms == nil || r.P99ms == nil || *r.P50ms > *r.P99ms || *r.P50ms <= 0 {
				t.Errorf("latency: percentiles %s", b)
			}
		case "live-fanout", "flows-compete":
			if r.P99ms == nil || r.BaselineP99ms == nil || *r.P99ms <= 0 || *r.BaselineP99ms <= 0 {
				t.Errorf("%s: percentiles %s", r.Scenario, b)
			}
			if r.Scenario == "live-fanout" && (r.PeakRSSMB == nil || !strings.Contains(r.Note, "KB each")) {
				t.Errorf("live-fanout: no gateway memory per stream: %s", b)
			}
		case "scheduled":
			if r.PeakRSSMB == nil || r.IndexPerSec == nil || r.RedisBytesPerEntry == nil || r.LatenessP99ms == nil || r.CancelMicros == nil || r.Missing == nil || *r.Missing != 0 {
				t.Errorf("scheduled: figures missing: %s", b)
			}
		case "slow-provider", "backlog":
			if r.PeakRSSMB == nil || *r.PeakRSSMB <= 0 {
				t.Errorf("%s: no peak RSS of the worker process: %s", r.Scenario, b)
			}
		}
		if !containsKey(b, "rtt_ms") || r.RTTms != 0 {
			t.Errorf("%s: rtt_ms missing or not 0 on loopback: %s", r.Scenario, b)
		}
		if r.CPUMicrosPerMessage == nil || *r.CPUMicrosPerMessage <= 0 {
			t.Errorf("%s: no cpu_us_per_message: %s", r.Scenario, b)
		}
		if r.NotificationsPS == nil && r.Scenario != "anchor" {
			t.Errorf("%s: no notifications/s", r.Scenario)
		}
	}

	table := Table(results, "herald bench --scale 0.01")
	for _, s := range Scenarios {
		if !strings.Contains(table, "| "+s.Name+" |") {
			t.Errorf("table lacks a row for %s:\n%s", s.Name, table)
		}
	}
}

// TestUpdateFile: the generated block replaces the previous one between
// the markers and leaves the rest of the file alone.
func TestUpdateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(path, []byte("# Benchmarks\n\nintro\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"first\n", "second\n"} {
		if err := UpdateFile(path, section); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, append(must(os.ReadFile(path)), "closing note\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateFile(path, "third\n"); err != nil {
		t.Fatal(err)
	}
	got := string(must(os.ReadFile(path)))
	want := "# Benchmarks\n\nintro\n\n" + BeginMarker + "\nthird\n" + EndMarker + "\nclosing note\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	sortDurations(d)
	for _, c := range []struct{ p, want float64 }{{0, 1}, {50, 50}, {99, 99}, {100, 100}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if percentile(nil, 99) != 0 {
		t.Error("empty percentile not 0")
	}
}

// TestTrackerGivesTheCollectorNothingToMark: what the measured process
// holds through a window for the bench's own bookkeeping (the tracker's
// entries and index, the planned ids) has no pointers in it. A tracker of
// id strings and *delivery entries made each collection of a latency run
// mark about 300,000 objects of the bench's (by count of what it
// held), and the slowest
// notifications were the ones in flight meanwhile.
func TestTrackerGivesTheCollectorNothingToMark(t *testing.T) {
	index := reflect.TypeFor[tracker]().Field(fieldIndex(t, "index")).Type
	for name, typ := range map[string]reflect.Type{
		"tracker.index's keys":   index.Key(),
		"tracker.index's values": index.Elem(),
		"tracker.ds":             reflect.TypeFor[tracker]().Field(fieldIndex(t, "ds")).Type.Elem(),
		"plannedIDs.keys":        reflect.TypeFor[plannedIDs]().Field(0).Type.Elem(),
		"plannedIDs.ends":        reflect.TypeFor[plannedIDs]().Field(1).Type.Elem(),
	} {
		if p := pointersIn(typ); p != "" {
			t.Errorf("%s (%v) holds a pointer: %s", name, typ, p)
		}
	}

	tr := newTracker()
	p := newPlannedIDs([][]notification.Notification{{{ID: "a"}, {ID: "b"}}, nil, {{ID: "c"}}})
	if lo, hi := p.span(2); lo != 2 || hi != 3 || len(p.upTo(2)) != 2 || len(p.upTo(0)) != 0 {
		t.Fatalf("span(2) = %d, %d; upTo(2) = %d keys; upTo(0) = %d", lo, hi, len(p.upTo(2)), len(p.upTo(0)))
	}
	es := tr.expectKeys(p.keys...)
	if again := tr.expect("b"); again[0] != es[1] || tr.expected != 3 {
		t.Fatalf("expecting an id twice made entry %d (first %d), %d expected", again[0], es[1], tr.expected)
	}
	at := time.Now()
	tr.stamp(at.Add(-5*time.Millisecond), es[:2])
	tr.produced(at.Add(-time.Millisecond), "c", "unexpected")
	tr.receive("a", nil)
	tr.receive("a", nil)
	tr.receive("c", nil)
	tr.receive("never expected", nil)
	lat, missing := tr.latencies(at.Add(time.Second))
	if len(lat) != 4 || missing != 2 || tr.dups != 1 || tr.received() != 2 {
		t.Fatalf("latencies %v, %d missing, %d duplicates, %d received; want 4 (2 at the cutoff), 2, 1, 2", lat, missing, tr.dups, tr.received())
	}
	if lat[3] < time.Second {
		t.Errorf("an undelivered notification counted %v at a cutoff a second later", lat[3])
	}
}

func fieldIndex(t *testing.T, name string) int {
	f, ok := reflect.TypeFor[tracker]().FieldByName(name)
	if !ok {
		t.Fatalf("tracker has no field %s", name)
	}
	return f.Index[0]
}

// pointersIn names a pointer typ holds, or returns "".
func pointersIn(typ reflect.Type) string {
	switch typ.Kind() {
	case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return typ.String()
	case reflect.Array:
		return pointersIn(typ.Elem())
	case reflect.Struct:
		for i := range typ.NumField() {
			if p := pointersIn(typ.Field(i).Type); p != "" {
				return typ.Field(i).Name + ": " + p
			}
		}
	}
	return ""
}

// TestTrackerKeepsNoReceivedString: a decoded notification's id is a
// substring of its whole record (notification.decodeBinary makes one string
// of it), so a tracker that kept the id it was handed kept every delivered
// record alive in the measured process: 121 MB of a latency run's 180 MB
// live heap, and garbage-collector marks of 230–280 ms that showed up as
// the run's p99.
func TestTrackerKeepsNoReceivedString(t *testing.T) {
	tr := newTracker()
	tr.expect("n-1")
	tr.produced(time.Now(), "n-1")
	if retaintest.Kept("n-1", func(id string) { tr.receive(id, nil) }) {
		t.Fatal("the tracker still holds the record its received id came from")
	}
	if lat, missing := tr.latencies(time.Time{}); len(lat) != 1 || missing != 0 {
		t.Fatalf("latencies = %v, %d missing; want one latency", lat, missing)
	}
}

// kafkaRequestsCounted checks that r carries the Kafka requests the broker
// handled in herald's window and herald's Redis round trips: a
// notification's trip takes fetches, produce requests and a claim, so none
// can be missing or zero.
func kafkaRequestsCounted(t *testing.T, r Result, b []byte) {
	t.Helper()
	if r.KafkaFetchesPerMessage == nil || r.KafkaProducesPerMessage == nil || *r.KafkaFetchesPerMessage <= 0 || *r.KafkaProducesPerMessage <= 0 {
		t.Errorf("%s: Kafka requests per notification missing: %s", r.Scenario, b)
	}
	if r.RedisRoundTripsPerMessage == nil || *r.RedisRoundTripsPerMessage <= 0 {
		t.Errorf("%s: Redis round trips per notification missing: %s", r.Scenario, b)
	}
}

// TestTrackerLogsSlowReceiptsInTheTrace: with an execution trace being
// written (--window-traces), a receipt slower than the tracker's slow
// threshold is logged in it with its event and channel, and a fast one is
// not; without a trace, nothing is formatted.
func TestTrackerLogsSlowReceiptsInTheTrace(t *testing.T) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("an execution trace is already being written: %v", err)
	}
	tr := newTracker()
	tr.slow = 10 * time.Millisecond
	es := tr.expect("n-slow", "n-fast")
	tr.stamp(time.Now().Add(-50*time.Millisecond), es[:1])
	tr.stamp(time.Now(), es[1:])
	tr.receive("n-slow", &channels.Message{NotificationID: "n-slow", EventID: "evt-slow", Channel: notification.Email})
	tr.receive("n-fast", &channels.Message{NotificationID: "n-fast", EventID: "evt-fast", Channel: notification.SMS})
	trace.Stop()
	for _, want := range []string{SlowLogCategory, " evt-slow email n-slow"} {
		if !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Errorf("the trace has no %q", want)
		}
	}
	if bytes.Contains(buf.Bytes(), []byte("evt-fast")) {
		t.Error("a receipt faster than the threshold was logged")
	}
}

// TestWindowFilesOfARepeatedScenarioDoNotOverwrite: a window recorded
// twice in one process (--scenario pipeline,pipeline) writes its second
// profile and trace beside the first, named -2, where it used to write
// over them (an outside tester's find).
func TestWindowFilesOfARepeatedScenarioDoNotOverwrite(t *testing.T) {
	dir := t.TempDir()
	e := &Env{Opts: Options{WindowProfiles: dir, WindowTraces: dir, Log: t.Logf}}
	for range 2 {
		stop := e.profileWindow("pipeline", "herald")
		stop()
	}
	for _, name := range []string{"pipeline-herald.pprof", "pipeline-herald-2.pprof", "pipeline-herald.trace", "pipeline-herald-2.trace"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v (want a file with something in it)", name, err)
		}
	}
}

// TestBannerSaysTheScale: the line announcing a scenario gives its sizes
// at --scale 1, and says so with the factor when the run is scaled.
func TestBannerSaysTheScale(t *testing.T) {
	s, err := Lookup("latency")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := banner(s[0], Options{}), "bench: latency — "+s[0].Doc; got != want {
		t.Errorf("unscaled: %q, want %q", got, want)
	}
	got := banner(s[0], Options{Scale: 0.1, RTT: 500 * time.Microsecond})
	for _, want := range []string{"latency @500µs RTT — ", s[0].Doc, "×0.1"} {
		if !strings.Contains(got, want) {
			t.Errorf("at --scale 0.1 --rtt 0.5ms: %q lacks %q", got, want)
		}
	}
}

// At another rate than 2,000 events/s the latency scenario produces at
// that rate, says so, and judges nothing: its target is set for 2,000/s.
func TestLatencyAtAnotherRate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Kafka, Redis and worker processes")
	}
	env, closeEnv, err := NewEnv(Options{Scale: 0.05, LatencyRate: 300, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer closeEnv()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := Lookup("latency")
	if err != nil {
		t.Fatal(err)
	}
	var got []Result
	if err := Run(ctx, env, list, func(r Result) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d results", len(got))
	}
	r := got[0]
	b, _ := json.Marshal(r)
	if !strings.Contains(r.Note, "300 events at 300/s") || r.Met || !strings.Contains(r.Target, "not judged at 300/s") {
		t.Errorf("latency at 300/s: %s", b)
	}
	// The table says so: its own row name, no verdict, not "missed".
	table := Table(got, "herald bench --scenario latency --rate 300")
	for _, want := range []string{"| latency @300 events/s | 0 |", "| – |\n", "- latency @300 events/s — not judged (target: "} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "missed") || strings.Contains(table, "**no**") {
		t.Errorf("a row at another rate reads as missed:\n%s", table)
	}
	// One second of events at 300/s, about 2.8 notifications each.
	if r.Messages < 300 || r.Messages > 1500 || r.Seconds < 0.8 || r.Seconds > 5 {
		t.Errorf("latency at 300/s: %d notifications in %v s: %s", r.Messages, r.Seconds, b)
	}
}

// steady publishes at its rate, whole events per tick: over one second's
// ticks, exactly rate events, for rates below one event a tick and
// between whole events a tick (125/s and 250/s both ran at 200/s, 500/s
// at 400/s), and never more by a tick than the rate allows.
func TestSteadyDueKeepsTheRate(t *testing.T) {
	ticks := int(time.Second / steadyTick)
	for _, rate := range []int{50, 125, 199, 250, 300, 500, 2000, 20000} {
		prev := 0
		for b := range ticks {
			due := steadyDue(rate, b)
			if due < prev || due-prev > rate/ticks+1 {
				t.Fatalf("rate %d: tick %d due %d after %d", rate, b, due, prev)
			}
			prev = due
		}
		if prev != rate {
			t.Errorf("rate %d: %d events in a second's ticks", rate, prev)
		}
	}
}
