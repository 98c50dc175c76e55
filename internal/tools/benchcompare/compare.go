package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// figures are the numbers of herald bench --json worth comparing, in the
// order the report lists them; lower says whether less is better.
var figures = []struct {
	name  string
	lower bool
}{
	{"cpu_us_per_message", true},
	{"plumbing_cpu_us_per_message", true},
	{"gc_cpu_us_per_message", true},
	{"allocs_per_message", true},
	{"alloc_bytes_per_message", true},
	{"kafka_fetches_per_message", true},
	{"kafka_produces_per_message", true},
	{"redis_round_trips_per_message", true},
	{"notifications_per_sec", false},
	{"ratio_vs_baseline", false},
	{"efficiency", false},
	{"p50_ms", true},
	{"p99_ms", true},
	{"peak_rss_mb", true},
}

// result is one scenario's JSON object from one run of herald bench.
type result map[string]any

// key names the row a result belongs to: its scenario and, when a round
// trip was added, the round trip (herald bench --rtt).
func (r result) key() string {
	s, _ := r["scenario"].(string)
	if rtt, _ := r["rtt_ms"].(float64); rtt > 0 {
		s += " @" + strconv.FormatFloat(rtt, 'f', -1, 64) + "ms RTT"
	}
	return s
}

// parseResults reads herald bench --json output: one JSON object per line;
// other lines (there should be none on stdout) are an error, not skipped,
// so that a changed output format is not taken for an empty run.
func parseResults(out []byte) ([]result, error) {
	var rs []result
	for i, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("line %d of herald bench's output is not a JSON object: %q", i+1, clip(line, 80))
		}
		if _, ok := r["scenario"].(string); !ok {
			return nil, fmt.Errorf("line %d of herald bench's output has no scenario: %q", i+1, clip(line, 80))
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("herald bench printed no results")
	}
	return rs, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// run is one invocation of one build: which build (0 for A, 1 for B), its
// place in the sequence, and what it printed.
type run struct {
	build   int
	seq     int
	results []result
}

// series is one figure of one row, per build, in run order.
type series struct {
	row, figure string
	lower       bool
	values      [2][]float64
}

// collect groups the runs' figures by row and figure. A figure is kept
// only when every run of both builds reported it for that row, so that
// medians compare like with like.
func collect(runs []run) []series {
	type k struct{ row, figure string }
	vals := map[k]*series{}
	var rows []string
	count := map[string][2]int{} // row → runs per build that reported it
	for _, r := range runs {
		for _, res := range r.results {
			row := res.key()
			if _, seen := count[row]; !seen {
				rows = append(rows, row)
			}
			c := count[row]
			c[r.build]++
			count[row] = c
			for _, f := range figures {
				v, ok := res[f.name].(float64)
				if !ok {
					continue
				}
				s := vals[k{row, f.name}]
				if s == nil {
					s = &series{row: row, figure: f.name, lower: f.lower}
					vals[k{row, f.name}] = s
				}
				s.values[r.build] = append(s.values[r.build], v)
			}
		}
	}
	var out []series
	for _, row := range rows {
		for _, f := range figures {
			s := vals[k{row, f.name}]
			c := count[row]
			if s == nil || len(s.values[0]) != c[0] || len(s.values[1]) != c[1] || c[0] == 0 || c[1] == 0 {
				continue
			}
			out = append(out, *s)
		}
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// verdict says whether B's runs all did better or all did worse than A's,
// or whether their ranges overlap (the difference is inside the spread).
func verdict(s series) string {
	aMin, aMax := slices.Min(s.values[0]), slices.Max(s.values[0])
	bMin, bMax := slices.Min(s.values[1]), slices.Max(s.values[1])
	switch {
	case bMax < aMin:
		if s.lower {
			return "B better in every run"
		}
		return "B worse in every run"
	case bMin > aMax:
		if s.lower {
			return "B worse in every run"
		}
		return "B better in every run"
	}
	return "ranges overlap"
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v <= -100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10 || v <= -10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func span(v []float64) string {
	lo, hi := slices.Min(v), slices.Max(v)
	if lo == hi {
		return num(lo)
	}
	return num(lo) + "–" + num(hi)
}

// report writes the comparison as a Markdown table: per row and figure,
// each build's range and median over its runs, B's median over A's, and
// whether the ranges overlap.
func report(w io.Writer, runs []run) {
	ss := collect(runs)
	fmt.Fprintln(w, "| scenario | figure | A: runs | A: median | B: runs | B: median | B ÷ A (medians) | spread |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, s := range ss {
		ma, mb := median(s.values[0]), median(s.values[1])
		ratio := "–"
		if ma != 0 {
			ratio = strconv.FormatFloat(mb/ma, 'f', 3, 64)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.row, s.figure,
			span(s.values[0]), num(ma), span(s.values[1]), num(mb), ratio, verdict(s))
	}
	if len(ss) == 0 {
		fmt.Fprintln(w, "| – | no figure was reported by every run of both builds | | | | | | |")
	}
}

// runLog lists runs, given in the order they ran, each with its headline
// figures per row, so that a drift over time can be seen beside the
// medians.
func runLog(w io.Writer, runs []run, names [2]string) {
	for _, r := range runs {
		parts := make([]string, 0, len(r.results))
		for _, res := range r.results {
			var fs []string
			for _, f := range headline {
				if v, ok := res[f].(float64); ok {
					fs = append(fs, f+"="+num(v))
				}
			}
			parts = append(parts, res.key()+": "+strings.Join(fs, " "))
		}
		fmt.Fprintf(w, "%2d. %s (%s): %s\n", r.seq+1, "AB"[r.build:r.build+1], names[r.build], strings.Join(parts, "; "))
	}
}

// headline are the figures runLog shows of a run.
var headline = []string{"cpu_us_per_message", "notifications_per_sec", "p99_ms"}

// chanceApart is the probability that n runs of each of two builds with
// the same distribution come out with one build's range entirely above
// or below the other's: 2 of the C(2n, n) equally likely interleavings.
func chanceApart(n int) float64 {
	c := 1.0 // C(2n, n), built up as a product
	for i := 1; i <= n; i++ {
		c = c * float64(n+i) / float64(i)
	}
	return 2 / c
}

func percent(p float64) string {
	switch {
	case p >= 0.1:
		return strconv.FormatFloat(100*p, 'f', 0, 64) + "%"
	case p >= 0.001:
		return strconv.FormatFloat(100*p, 'f', 1, 64) + "%"
	}
	return "less than 0.1%"
}
