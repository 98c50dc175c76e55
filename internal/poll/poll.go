// Package poll is the tests' one way to wait for a condition that another
// goroutine or process makes true: check it every few milliseconds until it
// holds or a deadline passes. It is for waiting on real servers and
// processes, never a substitute for synchronising on a channel that the
// code under test offers.
package poll

import (
	"testing"
	"time"
)

// Until calls cond every 10 ms until it returns true, failing tb (with
// what it waited for) if that takes longer than timeout.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// UntilNil calls cond every 10 ms until it returns nil, failing tb with
// what it waited for and cond's last error if that takes longer than
// timeout.
func UntilNil(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
