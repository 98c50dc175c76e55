package main

import (
	"strings"
	"testing"
	"time"
)

// --rtt takes round trips the bench can finish: past 20 ms the naive
// baselines, one round trip at a time, ran for minutes (the outside tester's
// --rtt 1s never finished anchor; 10s failed on an unrelated broker error).
func TestParseRTTs(t *testing.T) {
	got, err := parseRTTs("0,0.5ms,20ms")
	if err != nil || len(got) != 3 || got[1] != 500*time.Microsecond || got[2] != 20*time.Millisecond {
		t.Fatalf("parseRTTs(0,0.5ms,20ms) = %v, %v", got, err)
	}
	for _, bad := range []string{"21ms", "1s", "10s", "-1ms"} {
		if _, err := parseRTTs(bad); err == nil || !strings.Contains(err.Error(), "round trip in [0, 20ms]") && bad != "-1ms" {
			t.Errorf("parseRTTs(%s): %v, want the range named", bad, err)
		}
	}
}

// An empty --scenario (a script's unset variable) is refused at once; it
// used to run every scenario (the outside tester's report).
func TestBenchEmptyScenarioRefused(t *testing.T) {
	for _, v := range []string{"", " "} {
		if code := cmdBench([]string{"--scenario", v}); code != 2 {
			t.Errorf("herald bench --scenario %q: exit %d, want 2", v, code)
		}
	}
}

// A --scale too small to measure is refused at once; at 0.0001 the
// outside tester got 0 s runs, 20,000/s from 2,000/s produced and a
// negative memory per stream.
func TestBenchTinyScaleRefused(t *testing.T) {
	for _, v := range []string{"0.0001", "0.009", "0", "-1", "11"} {
		if code := cmdBench([]string{"--scenario", "pipeline", "--scale", v}); code != 2 {
			t.Errorf("herald bench --scale %s: exit %d, want 2", v, code)
		}
	}
}

// --window-profiles takes an existing directory, not beside --cpuprofile
// (the process has one CPU profile at a time), and a scenario it profiles;
// --window-traces an existing directory and such a scenario too.
func TestBenchWindowProfilesFlag(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--scenario", "pipeline", "--window-profiles", dir, "--cpuprofile", dir + "/cpu.pprof"},
		{"--scenario", "pipeline", "--window-profiles", dir + "/missing"},
		{"--scenario", "anchor,backlog", "--window-profiles", dir}, // no window it profiles: it used to write nothing, silently
		{"--scenario", "latency", "--window-traces", dir + "/missing"},
		{"--scenario", "anchor", "--window-traces", dir},
	} {
		if code := cmdBench(args); code != 2 {
			t.Errorf("herald bench %v: exit %d, want 2", args, code)
		}
	}
}

// --rate is the latency scenario's: in a range the bench can keep, only
// with latency among the scenarios, and never into the table, whose
// latency row is the 2,000 events/s target's.
func TestBenchRateFlag(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "latency", "--rate", "10"},
		{"--scenario", "latency", "--rate", "-5"},
		{"--scenario", "latency", "--rate", "50000"},
		{"--scenario", "pipeline", "--rate", "500"},
		{"--scenario", "latency", "--rate", "500", "--update", t.TempDir() + "/B.md"},
	} {
		if code := cmdBench(args); code != 2 {
			t.Errorf("herald bench %v: exit %d, want 2", args, code)
		}
	}
}
