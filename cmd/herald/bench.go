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
	scale := fs.Float64("scale", 1, "multiply message counts and durations (1 = the sizes the targets are set for)")
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
	if *scale <= 0 || *scale > 10 {
		fmt.Fprintf(os.Stderr, "herald bench: --scale %v: want a number in (0, 10]\n", *scale)
		return 2
	}
	list, err := bench.Lookup(*scenarios)
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald bench: --scenario: %v\n", err)
		return 2
	}
	env, closeEnv, err := bench.NewEnv(bench.Options{Scale: *scale, Log: func(f string, a ...any) {
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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var results []bench.Result
	err = bench.Run(ctx, env, list, func(r bench.Result) {
		results = append(results, r)
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
		}
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald bench: %v\n", err)
		return 1
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
