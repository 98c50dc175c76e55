// Package logtest records a role's log lines in tests, with the options
// of the process logger (obs.NewLogger), and checks what its outcome lines
// carry.
package logtest

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Observed is a logger at debug level that adds each line's caller, as the
// process logger does, and the lines it records.
func Observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(core, zap.AddCaller()), logs
}

// Outcomes returns the recorded outcome lines, the ones with an "outcome"
// field, and fails t for each that names its caller: outcome lines carry
// none (obs.OutcomeLogger).
func Outcomes(t testing.TB, logs *observer.ObservedLogs) []observer.LoggedEntry {
	t.Helper()
	var out []observer.LoggedEntry
	for _, e := range logs.All() {
		if _, ok := e.ContextMap()["outcome"]; !ok {
			continue
		}
		if e.Caller.Defined {
			t.Errorf("outcome line %q names its caller %s", e.Message, e.Caller.TrimmedPath())
		}
		out = append(out, e)
	}
	return out
}

// Count is how many of lines have outcome o.
func Count(lines []observer.LoggedEntry, o string) int {
	n := 0
	for _, e := range lines {
		if e.ContextMap()["outcome"] == o {
			n++
		}
	}
	return n
}
