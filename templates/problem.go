package templates

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a template tree, located for the person
// who has to fix it. String gives "file:line:col: what is wrong", the form
// editors and CI annotations understand.
type Problem struct {
	// File is the slash-separated path inside the tree:
	// "gym.booking.confirmed/sms.en.txt", or a folder for a problem with
	// the folder as a whole.
	File string
	// Line and Col are 1-based; 0 when the problem is not at a position.
	Line, Col int
	// Sample is the sample file whose rendering revealed the problem, when
	// one did; empty for problems in the files themselves.
	Sample string
	Msg    string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
		if p.Col > 0 {
			b.WriteString(":" + strconv.Itoa(p.Col))
		}
	}
	b.WriteString(": ")
	b.WriteString(p.Msg)
	return b.String()
}

// LoadError is every problem Load found in a tree, sorted by file and line.
type LoadError struct {
	Problems []Problem
}

func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return fmt.Sprintf("templates: %d problem(s):\n%s", len(e.Problems), strings.Join(lines, "\n"))
}

// problems collects validation failures.
type problems []Problem

// add records a problem with a whole file or folder. A message that starts
// with "line N: " (as YAML and template parse errors do) is located at N.
func (p *problems) add(file, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	line := 0
	if m := leadingLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	*p = append(*p, Problem{File: file, Line: line, Msg: msg})
}

func (p *problems) at(file string, line, col int, sample, format string, args ...any) {
	*p = append(*p, Problem{File: file, Line: line, Col: col, Sample: sample, Msg: fmt.Sprintf(format, args...)})
}

var leadingLineRE = regexp.MustCompile(`^line (\d+): `)

func (p problems) sorted() []Problem {
	out := append([]Problem(nil), p...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Msg < out[j].Msg
	})
	// The same problem revealed by several samples is reported once.
	dedup := out[:0]
	for i, q := range out {
		if i > 0 && q.File == out[i-1].File && q.Line == out[i-1].Line && q.Col == out[i-1].Col && q.Msg == out[i-1].Msg {
			continue
		}
		dedup = append(dedup, q)
	}
	return dedup
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &LoadError{Problems: p.sorted()}
}
