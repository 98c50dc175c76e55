// Command benchcompare runs herald bench on two builds of herald in turn,
// A B B A for each round, and reports every figure both builds printed:
// each build's range and median over its runs, B's median over A's, and
// whether the two ranges overlap. On a shared VM a build's single run
// moves by a fifth from one minute to the next; alternating the builds
// spreads that drift over both, and the ranges show how much of a
// difference it can explain. make bench-compare builds a git revision as A
// and the working tree as B (BENCHMARKS.md, "Comparing two builds").
//
//	go run ./internal/tools/benchcompare [-rounds 2] [-scenario pipeline] [-args '--rtt 0.5ms'] [-o runs.jsonl] A B
//
// A and B are herald binaries. Nothing is asserted: it prints the runs as
// they finish on stderr and the table on stdout.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gymhq/herald/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(compare(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func compare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchcompare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rounds := fs.Int("rounds", 2, "rounds of A B B A")
	scenario := fs.String("scenario", "pipeline", "herald bench --scenario")
	extra := fs.String("args", "", "more herald bench arguments, separated by spaces (for example --rtt 0.5ms)")
	out := fs.String("o", "", "append each run's JSON objects to this file, each with its build (\"A\" or \"B\") and binary")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: benchcompare [-rounds N] [-scenario a,b] [-args '...'] [-o FILE] A_BINARY B_BINARY")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	if *rounds < 1 {
		fmt.Fprintf(stderr, "benchcompare: -rounds %d: want at least 1\n", *rounds)
		return 2
	}
	names := [2]string{fs.Arg(0), fs.Arg(1)}
	var paths [2]string // what runs: the files named, never a namesake on $PATH
	for i, n := range names {
		if _, err := os.Stat(n); err != nil {
			fmt.Fprintf(stderr, "benchcompare: %v\n", err)
			return 2
		}
		abs, err := filepath.Abs(n)
		if err != nil {
			fmt.Fprintf(stderr, "benchcompare: %v\n", err)
			return 2
		}
		paths[i] = abs
	}
	started := time.Now().UTC().Format(time.RFC3339)
	benchArgs := append([]string{"bench", "--scenario", *scenario, "--json"}, strings.Fields(*extra)...)
	var record io.Writer
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "benchcompare: -o: %v\n", err)
			return 2
		}
		defer f.Close()
		record = f
	}

	var runs []run
	for seq, build := range order(*rounds) {
		rs, err := benchOnce(ctx, paths[build], benchArgs)
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "benchcompare: interrupted in run %d (%s, %s)\n", seq+1, "AB"[build:build+1], names[build])
			return 130
		}
		if err != nil {
			fmt.Fprintf(stderr, "benchcompare: run %d (%s, %s): %v\n", seq+1, "AB"[build:build+1], names[build], err)
			return 1
		}
		r := run{build: build, seq: seq, results: rs}
		runs = append(runs, r)
		runLog(stderr, []run{r}, names)
		if record != nil {
			for _, res := range rs {
				tagged := map[string]any{"comparison": started, "build": "AB"[build : build+1], "binary": names[build], "seq": seq + 1}
				for k, v := range res {
					tagged[k] = v
				}
				b, _ := json.Marshal(tagged)
				fmt.Fprintln(record, string(b))
			}
		}
	}
	plural := "s"
	if *rounds == 1 {
		plural = ""
	}
	fmt.Fprintf(stdout, "A = %s, B = %s: %d round%s of A B B A, each run `herald %s`, on %s.\n\n",
		names[0], names[1], *rounds, plural, strings.Join(benchArgs, " "), bench.Machine())
	report(stdout, runs)
	n := 2 * *rounds
	fmt.Fprintf(stdout, "\nWith %d runs per build, two builds that do not differ at all still show a figure's ranges apart (\"every run\") %s of the time by chance alone: take a verdict from more rounds, and from several figures agreeing.\n",
		n, percent(chanceApart(n)))
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "Runs in the order they ran:")
	runLog(stdout, runs, names)
	return 0
}

// failureLine picks the line of a failed run's stderr that says why:
// herald bench's own error ("herald bench: …") or the flag package's (a
// build older than a flag in -args prints "flag provided but not
// defined" and then its whole usage), else the last line.
func failureLine(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "herald bench:") || strings.HasPrefix(l, "flag provided but not defined") ||
			strings.HasPrefix(l, "invalid value") {
			return l
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// order is the build of each run: A B B A per round, so that each build
// runs as often early as late in every round.
func order(rounds int) []int {
	o := make([]int, 0, 4*rounds)
	for range rounds {
		o = append(o, 0, 1, 1, 0)
	}
	return o
}

// benchOnce runs bin with args and parses what it printed.
func benchOnce(ctx context.Context, bin string, args []string) ([]result, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	// Interrupted, herald bench is asked to stop (SIGTERM), not killed: it
	// stops the infrastructure and worker processes it started, which a
	// SIGKILL would leave running.
	// It drains within its shutdown bounds (seconds); two minutes later it
	// is killed, the processes it started with it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Minute
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ee *exec.ExitError
		if why := failureLine(stderr.String()); errors.As(err, &ee) && why != "" {
			return nil, fmt.Errorf("%w: %s", err, why)
		}
		return nil, err
	}
	return parseResults(stdout.Bytes())
}
