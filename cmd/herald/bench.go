package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/gymhq/herald/bench"
)

// cmdBench is `herald bench`: the scenarios of package bench, each against
// its baseline in the same run.
func cmdBench(args []string) int {
	if len(args) == 2 {
		if code, ok := bench.Child(args[0], args[1]); ok {
			return code
		}
	}
	fs := flag.NewFlagSet("herald bench", flag.ContinueOnError)
	var names []string
	for _, s := range bench.Scenarios {
		names = append(names, s.Name)
	}
	scenarios := fs.String("scenario", "", "comma-separated scenarios to run (default all: "+strings.Join(names, ",")+")")
	asJSON := fs.Bool("json", false, "print one JSON object per scenario instead of the table")
	update := fs.String("update", "", "also write the table between the markers in this Markdown file (make bench: BENCHMARKS.md)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process to the file (go tool pprof)")
	windowProfiles := fs.String("window-profiles", "", "write a CPU profile of this whole process over each measured window of pipeline and latency (herald's, and the plumbing floor's) into this directory, one file per window: every goroutine, none of the setup (not with --cpuprofile)")
	windowTraces := fs.String("window-traces", "", "write an execution trace (runtime/trace) of this whole process over each measured window of pipeline and latency into this directory, one file per window; in latency each notification slower than the target is logged in it (category "+bench.SlowLogCategory+"), for go run ./internal/tools/tracegc")
	memProfile := fs.String("memprofile", "", "write this process's allocations over the run to the file when it ends (go tool pprof -sample_index=alloc_space)")
	scale := fs.Float64("scale", 1, "multiply message counts and durations (1 = the sizes the targets are set for)")
	rate := fs.Int("rate", 0, "events per second of the latency scenario instead of 2000, the rate its target is set for (judged only there): CPU per notification at another rate, in [50, 20000]; not with --update")
	rttFlag := fs.String("rtt", "0", "round trip added to every Kafka and Redis connection of herald and its baseline, through latency proxies (0 = loopback); a comma-separated list runs the scenarios once per value, e.g. 0,0.5ms (scenarios that take a round trip: "+strings.Join(bench.RTTScenarios(), ",")+")")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "herald bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	// Below 0.01 (TestScenarios' scale) a scenario is a handful of
	// records in milliseconds: CPU time in 10 ms ticks reads 0, and an
	// outside tester got 0 s, 20,000/s from 2,000/s produced and -1,304 KB
	// per stream at 0.0001.
	if *scale < 0.01 || *scale > 10 {
		fmt.Fprintf(os.Stderr, "herald bench: --scale %v: want a number in [0.01, 10]; smaller runs are too short to measure\n", *scale)
		return 2
	}
	named := false
	fs.Visit(func(f *flag.Flag) { named = named || f.Name == "scenario" })
	if named && strings.TrimSpace(*scenarios) == "" {
		// An empty list from a script's unset variable would otherwise
		// run every scenario, minutes of work nobody asked for.
		fmt.Fprintf(os.Stderr, "herald bench: --scenario is empty; name one or more of %s, or leave the flag out to run them all\n", strings.Join(names, ","))
		return 2
	}
	list, err := bench.Lookup(*scenarios)
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald bench: --scenario: %v\n", err)
		return 2
	}
	rtts, err := parseRTTs(*rttFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald bench: --rtt %s: %v\n", *rttFlag, err)
		return 2
	}
	// Each round trip runs the scenarios that take it; a scenario named
	// explicitly that never would run is an error.
	type pass struct {
		rtt  time.Duration
		list []bench.Scenario
	}
	var passes []pass
	ran := map[string]bool{}
	for _, rtt := range rtts {
		l := bench.WithRTT(list, rtt)
		for _, s := range l {
			ran[s.Name] = true
		}
		if len(l) > 0 {
			passes = append(passes, pass{rtt, l})
		}
	}
	for _, s := range list {
		if !ran[s.Name] {
			fmt.Fprintf(os.Stderr, "herald bench: --rtt %s: scenario %s runs on loopback only (--rtt applies to %s); add 0 to the list\n",
				*rttFlag, s.Name, strings.Join(bench.RTTScenarios(), ", "))
			return 2
		}
	}
	if *rate != 0 {
		// The table's latency row is the 2,000/s target's; a row at
		// another rate is a measurement to print, never to record there.
		switch {
		case *rate < 50 || *rate > 20000:
			fmt.Fprintf(os.Stderr, "herald bench: --rate %d: want events per second in [50, 20000]\n", *rate)
			return 2
		case !ran["latency"]:
			fmt.Fprintln(os.Stderr, "herald bench: --rate: only the latency scenario takes a rate; add latency to --scenario")
			return 2
		case *update != "":
			fmt.Fprintln(os.Stderr, "herald bench: --rate and --update: the table's latency row is the 2,000 events/s target's; leave one out")
			return 2
		}
	}
	if *windowProfiles != "" && *cpuProfile != "" {
		fmt.Fprintln(os.Stderr, "herald bench: --window-profiles and --cpuprofile: a process has one CPU profile at a time; choose one")
		return 2
	}
	for _, f := range []struct{ flagName, dir string }{{"window-profiles", *windowProfiles}, {"window-traces", *windowTraces}} {
		flagName, dir := f.flagName, f.dir
		if dir == "" {
			continue
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			fmt.Fprintf(os.Stderr, "herald bench: --%s %s: want an existing directory\n", flagName, dir)
			return 2
		}
		if !ran["pipeline"] && !ran["latency"] {
			fmt.Fprintf(os.Stderr, "herald bench: --%s: only pipeline and latency have the windows it records; add one of them to --scenario\n", flagName)
			return 2
		}
	}
	env, closeEnv, err := bench.NewEnv(bench.Options{Scale: *scale, LatencyRate: *rate, WindowProfiles: *windowProfiles, WindowTraces: *windowTraces, Log: func(f string, a ...any) {
		fmt.Fprintf(os.Stderr, f+"\n", a...)
	}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald bench: %v\n", err)
		return 1
	}
	defer closeEnv()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "herald bench: --cpuprofile: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "herald bench: --cpuprofile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "herald bench: --memprofile: %v\n", err)
			return 1
		}
		defer func() {
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintf(os.Stderr, "herald bench: --memprofile: %v\n", err)
			}
			f.Close()
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var results []bench.Result
	for _, p := range passes {
		env.Opts.RTT = p.rtt
		err = bench.Run(ctx, env, p.list, func(r bench.Result) {
			results = append(results, r)
			if *asJSON {
				b, _ := json.Marshal(r)
				fmt.Println(string(b))
			}
		})
		if err != nil {
			if ctx.Err() != nil {
				// Whatever the scenario was doing when it was cut short
				// (an EOF from a stopped child, a canceled publish) is
				// not news.
				fmt.Fprintln(os.Stderr, "herald bench: interrupted")
				return 130
			}
			fmt.Fprintf(os.Stderr, "herald bench: %v\n", err)
			return 1
		}
	}
	command := "herald bench " + strings.Join(args, " ")
	table := bench.Table(results, strings.TrimSpace(command))
	if !*asJSON {
		fmt.Print(table)
	}
	if *update != "" {
		if err := bench.UpdateFile(*update, table); err != nil {
			fmt.Fprintf(os.Stderr, "herald bench: --update %s: %v\n", *update, err)
			return 1
		}
	}
	return 0
}

// parseRTTs reads --rtt: one duration or a comma-separated list ("0" and
// "0ms" are loopback).
func parseRTTs(v string) ([]time.Duration, error) {
	var out []time.Duration
	seen := map[time.Duration]bool{}
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		d, err := time.ParseDuration(f)
		if f == "0" {
			d, err = 0, nil
		}
		if err != nil {
			return nil, err
		}
		if d < 0 || d > maxRTT {
			return nil, fmt.Errorf("%v: want a round trip in [0, %v] (the naive baselines make a few round trips per message one at a time: past that they take minutes)", d, maxRTT)
		}
		if d > 0 && d < 2*time.Microsecond {
			return nil, fmt.Errorf("%v: the proxies add whole microseconds each way", d)
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, nil
}

// maxRTT is the longest round trip --rtt takes: between regions, not only
// between pods in one zone.
const maxRTT = 20 * time.Millisecond
