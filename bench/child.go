package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

// ChildFlag is the hidden `herald bench` flag that turns the process into a
// measured worker: herald's channel workers, as `herald run` wires them, with
// sinks of a given latency. Scenarios that report memory run the worker as a
// child so that its peak RSS is herald's alone: the Kafka cluster holding
// the queued records lives in the infrastructure process.
const ChildFlag = "--worker-process"

// childSpec is what the parent tells a worker process.
type childSpec struct {
	Brokers       []string `json:"brokers"`
	RedisURL      string   `json:"redis_url"`
	Channels      []string `json:"channels"`
	SendLatencyMS float64  `json:"send_latency_ms"`
	MaxInFlight   int      `json:"max_in_flight"`
	Partitions    int      `json:"partitions"`
	// Expect is how many distinct notifications to deliver before draining
	// and exiting.
	Expect int `json:"expect"`
	// Checkpoints is how many times along the way VmRSS is sampled, to show
	// whether memory grows with the work done.
	Checkpoints int `json:"checkpoints"`
}

// childReport is the worker process's last line on stdout.
type childReport struct {
	// Delivered counts sends (ids are not kept, see tracker.anyID).
	Delivered int     `json:"delivered"`
	Seconds   float64 `json:"seconds"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// CPUSeconds is the process's CPU time (user + system) until drained.
	CPUSeconds float64 `json:"cpu_seconds"`
	// RSSMB is VmRSS at evenly spaced fractions of Expect.
	RSSMB []float64 `json:"rss_mb,omitempty"`
}

// ChildMain runs a worker process from its spec (a JSON argument) and
// prints its report. It returns the exit code.
func ChildMain(arg string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(arg), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "herald bench %s: bad spec: %v\n", ChildFlag, err)
		return 2
	}
	if path := os.Getenv("HERALD_BENCH_WORKER_CPUPROFILE"); path != "" {
		// For investigating a scenario: go tool pprof herald <path>.
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "herald bench %s: HERALD_BENCH_WORKER_CPUPROFILE: %v\n", ChildFlag, err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "herald bench %s: HERALD_BENCH_WORKER_CPUPROFILE: %v\n", ChildFlag, err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := runChild(spec)
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald bench %s: %v\n", ChildFlag, err)
		return 1
	}
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	return 0
}

func runChild(spec childSpec) (childReport, error) {
	ctx := context.Background()
	tpl, err := templates.Embedded()
	if err != nil {
		return childReport{}, err
	}
	client, err := dedupe.Open(spec.RedisURL)
	if err != nil {
		return childReport{}, err
	}
	hs := sharedRedis(client)
	var chs []notification.Channel
	for _, c := range spec.Channels {
		chs = append(chs, notification.Channel(c))
	}
	t := newTracker()
	t.anyID = true
	t.expected = spec.Expect
	hp, err := startHeraldWith(ctx, tpl, hs.store, hs.close, pipelineConfig{
		brokers: spec.Brokers, channels: chs, partitions: spec.Partitions, suppressions: hs.list,
		sendLatency: time.Duration(spec.SendLatencyMS * float64(time.Millisecond)), maxInFlight: spec.MaxInFlight,
	}, t)
	if err != nil {
		return childReport{}, err
	}
	var samples []float64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for k := 1; k <= spec.Checkpoints; k++ {
			at := spec.Expect * k / spec.Checkpoints
			tick := time.NewTicker(50 * time.Millisecond)
			for t.received() < at && !t.finished() {
				<-tick.C
			}
			tick.Stop()
			if rss, err := memRSS("self", "VmRSS:"); err == nil {
				samples = append(samples, rss)
			}
		}
	}()
	werr := t.wait(ctx, 5*time.Minute)
	cpu := cpuTime()
	<-sampled
	hp.close()
	if werr != nil {
		return childReport{}, werr
	}
	rss, err := peakRSS("self")
	if err != nil {
		return childReport{}, err
	}
	return childReport{
		Delivered: t.received(),
		Seconds:   t.last.Sub(hp.first.time()).Seconds(), PeakRSSMB: rss, RSSMB: samples,
		CPUSeconds: cpu.Seconds(),
	}, nil
}

// peakRSS reads VmHWM (peak resident set) of a process from /proc, in MB.
func peakRSS(pid string) (float64, error) { return memRSS(pid, "VmHWM:") }

// memRSS reads a kB field of /proc/PID/status, in MB.
func memRSS(pid, field string) (float64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS: %q: %w", line, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("peak RSS: no %s in /proc/%s/status", field, pid)
}

// runWorkerProcess re-executes herald as a measured worker.
func (e *Env) runWorkerProcess(ctx context.Context, spec childSpec) (childReport, error) {
	arg, err := json.Marshal(spec)
	if err != nil {
		return childReport{}, err
	}
	cmd := exec.CommandContext(ctx, e.Self, "bench", ChildFlag, string(arg))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return childReport{}, fmt.Errorf("worker process: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var rep childReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		return childReport{}, fmt.Errorf("worker process report %q: %w", stdout.String(), err)
	}
	return rep, nil
}
