package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestVerdict(t *testing.T) {
	s := series{lower: true, values: [2][]float64{{80, 90}, {70, 75}}}
	if got := verdict(s); got != "B better in every run" {
		t.Errorf("lower is better, B all lower: %q", got)
	}
	s.lower = false
	if got := verdict(s); got != "B worse in every run" {
		t.Errorf("higher is better, B all lower: %q", got)
	}
	s.values[1] = []float64{85, 95}
	if got := verdict(s); got != "ranges overlap" {
		t.Errorf("overlapping: %q", got)
	}
	s.values[1] = []float64{95, 99}
	if got := verdict(s); got != "B better in every run" {
		t.Errorf("higher is better, B all higher: %q", got)
	}
	s.lower = true
	if got := verdict(s); got != "B worse in every run" {
		t.Errorf("lower is better, B all higher: %q", got)
	}
}

// TestReportKeepsWhatEveryRunReported: a figure one run lacks is left
// out, rows keep their RTT apart, and the ratio is of the medians.
func TestReportKeepsWhatEveryRunReported(t *testing.T) {
	mk := func(build, seq int, cpu float64, gc any) run {
		r := result{"scenario": "pipeline", "rtt_ms": 0.0, "cpu_us_per_message": cpu}
		if gc != nil {
			r["gc_cpu_us_per_message"] = gc
		}
		rtt := result{"scenario": "pipeline", "rtt_ms": 0.5, "cpu_us_per_message": 2 * cpu}
		return run{build: build, seq: seq, results: []result{r, rtt}}
	}
	runs := []run{mk(0, 0, 100, 10.0), mk(1, 1, 80, 9.0), mk(1, 2, 90, nil), mk(0, 3, 110, 11.0)}
	var b bytes.Buffer
	report(&b, runs)
	out := b.String()
	for _, want := range []string{
		"| pipeline | cpu_us_per_message | 100–110 | 105 | 80.0–90.0 | 85.0 | 0.810 | B better in every run |",
		"| pipeline @0.5ms RTT | cpu_us_per_message | 200–220 | 210 | 160–180 | 170 | 0.810 | B better in every run |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "gc_cpu_us_per_message") {
		t.Errorf("a figure one run lacked was reported:\n%s", out)
	}
}

func TestParseResultsRefusesOtherOutput(t *testing.T) {
	if _, err := parseResults([]byte("bench: pipeline\n")); err == nil {
		t.Error("a progress line was taken for a result")
	}
	if _, err := parseResults([]byte("\n")); err == nil {
		t.Error("no output was taken for a run")
	}
	rs, err := parseResults([]byte(`{"scenario":"anchor","efficiency":0.8}` + "\n" + `{"scenario":"latency","p99_ms":50}` + "\n"))
	if err != nil || len(rs) != 2 || rs[1].key() != "latency" {
		t.Fatalf("two results: %v, %v", rs, err)
	}
}

// fakeHerald writes an executable that logs its name and arguments to log
// and prints one pipeline result with the given CPU figure.
func fakeHerald(t *testing.T, dir, name, log, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	script := "#!/bin/sh\necho \"" + name + " $*\" >> " + log + "\n" + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAlternatesTheBuilds runs two stand-in binaries: they run A B B A per
// round with herald bench's arguments, and the report has both.
func TestAlternatesTheBuilds(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	a := fakeHerald(t, dir, "a", log, `echo '{"scenario":"pipeline","rtt_ms":0,"cpu_us_per_message":100}'`)
	b := fakeHerald(t, dir, "b", log, `echo '{"scenario":"pipeline","rtt_ms":0,"cpu_us_per_message":90}'`)
	rec := filepath.Join(dir, "runs.jsonl")
	var stdout, stderr bytes.Buffer
	if code := compare(context.Background(), []string{"-rounds", "2", "-args", "--rtt 0.5ms", "-o", rec, a, b}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, line := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		name, args, _ := strings.Cut(line, " ")
		order = append(order, name)
		if args != "bench --scenario pipeline --json --rtt 0.5ms" {
			t.Errorf("%s ran with %q", name, args)
		}
	}
	if strings.Join(order, "") != "abbaabba" {
		t.Errorf("order %v, want a b b a twice", order)
	}
	if !strings.Contains(stdout.String(), "| pipeline | cpu_us_per_message | 100 | 100 | 90.0 | 90.0 | 0.900 | B better in every run |") {
		t.Errorf("report:\n%s", stdout.String())
	}
	recorded, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(recorded), `"build":"B"`); n != 4 {
		t.Errorf("%d runs of B recorded, want 4:\n%s", n, recorded)
	}
}

// TestAFailingRunStops: a build that fails stops the comparison with its
// last line of stderr, not a table of what ran before it.
func TestAFailingRunStops(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	a := fakeHerald(t, dir, "a", log, `echo '{"scenario":"pipeline","cpu_us_per_message":100}'`)
	b := fakeHerald(t, dir, "b", log, `echo "herald bench: bench needs redis-server on PATH" >&2; exit 1`)
	var stdout, stderr bytes.Buffer
	if code := compare(context.Background(), []string{a, b}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "run 2 (B, "+b+"): exit status 1: herald bench: bench needs redis-server on PATH") {
		t.Errorf("stderr: %s", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("a table after a failed run:\n%s", stdout.String())
	}
}

// TestInterruptAsksTheRunToStop: cancelled (Ctrl-C), a running herald
// bench gets SIGTERM, which it answers by stopping the processes it
// started; a SIGKILL would leave them behind.
func TestInterruptAsksTheRunToStop(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	started := filepath.Join(dir, "started")
	a := fakeHerald(t, dir, "a", log, `trap 'echo term >> `+log+`; exit 130' TERM; touch `+started+`; while :; do sleep 0.05; done`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var stdout, stderr bytes.Buffer
	go func() { done <- compare(ctx, []string{a, a}, &stdout, &stderr) }()
	for i := 0; ; i++ {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if i > 400 {
			t.Fatal("the stand-in never started")
		}
		time.Sleep(25 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 130 {
		t.Errorf("exit %d, want 130", code)
	}
	if !strings.Contains(stderr.String(), "benchcompare: interrupted in run 1 (A, ") {
		t.Errorf("stderr: %s", stderr.String())
	}
	got, _ := os.ReadFile(log)
	if !strings.Contains(string(got), "term") {
		t.Errorf("the run was not sent SIGTERM; its log:\n%s", got)
	}
}

func TestChanceApart(t *testing.T) {
	for _, c := range []struct {
		n    int
		want float64
	}{{1, 1}, {2, 1.0 / 3}, {4, 2.0 / 70}} {
		if got := chanceApart(c.n); got < c.want*0.999 || got > c.want*1.001 {
			t.Errorf("chanceApart(%d) = %v, want %v", c.n, got, c.want)
		}
	}
}

// TestFailureLine: the line that says why a run failed, not the last line
// of a usage text or of the progress lines before the error (an outside
// tester saw a flag's help line instead of "flag provided but not
// defined" when the older build lacked a flag).
func TestFailureLine(t *testing.T) {
	for _, c := range []struct{ stderr, want string }{
		{"flag provided but not defined: -window-profiles\nUsage of herald bench:\n  -update string\n    \talso write the table\n", "flag provided but not defined: -window-profiles"},
		{"bench: pipeline: herald delivered 10 notifications\nherald bench: herald: context deadline exceeded\n", "herald bench: herald: context deadline exceeded"},
		{"something else\nbroke\n", "broke"},
	} {
		if got := failureLine(c.stderr); got != c.want {
			t.Errorf("failureLine(%q) = %q, want %q", c.stderr, got, c.want)
		}
	}
}

// TestRunsTheFilesNamed: a bare name is the file in the working directory
// that was checked, not a namesake found on $PATH.
func TestRunsTheFilesNamed(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "log")
	fakeHerald(t, dir, "herald", log, `echo '{"scenario":"pipeline","cpu_us_per_message":100}'`)
	fakeHerald(t, elsewhere, "herald", log, `echo '{"scenario":"pipeline","cpu_us_per_message":1}'; echo impostor >> `+log)
	t.Setenv("PATH", elsewhere+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	if code := compare(context.Background(), []string{"-rounds", "1", "herald", "herald"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	got, _ := os.ReadFile(log)
	if strings.Contains(string(got), "impostor") {
		t.Errorf("ran the herald on $PATH, not ./herald:\n%s", got)
	}
	if !strings.Contains(stdout.String(), "1 round of A B B A") || !strings.Contains(stdout.String(), "33% of the time") {
		t.Errorf("report:\n%s", stdout.String())
	}
}
