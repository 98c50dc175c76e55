package main

import "testing"

// A negative --samples is refused before any broker is dialled; it used to
// be accepted and show none (the outside tester's report).
func TestDLQNegativeSamplesRefused(t *testing.T) {
	if code := cmdDLQ([]string{"inspect", "--samples", "-1", "--kafka-brokers", "127.0.0.1:1"}); code != 2 {
		t.Errorf("herald dlq inspect --samples -1: exit %d, want 2", code)
	}
}
