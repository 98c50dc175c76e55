package main

import (
	"testing"
	"time"

	"github.com/gymhq/herald/dlq"
)

// A negative --samples is refused before any broker is dialled; it used to
// be accepted and show none (the outside tester's report).
func TestDLQNegativeSamplesRefused(t *testing.T) {
	if code := cmdDLQ([]string{"inspect", "--samples", "-1", "--kafka-brokers", "127.0.0.1:1"}); code != 2 {
		t.Errorf("herald dlq inspect --samples -1: exit %d, want 2", code)
	}
}

// A reason only a channel gives (the webhook's endpoint_gone) is known to
// --reason: the first check of reasons refused it, so a partner's 410
// dead letters could not be selected for replay (a review's find). A typo
// is still refused before any broker is dialled.
func TestDLQReasonKnowsChannelReasons(t *testing.T) {
	f, err := dlq.ParseFilter("endpoint_gone", "webhook", "", time.Now())
	if err != nil || f.Reason != "endpoint_gone" {
		t.Fatalf("--reason endpoint_gone: %v", err)
	}
	if code := cmdDLQ([]string{"replay", "--reason", "endpoint_goen", "--dry-run", "--kafka-brokers", "127.0.0.1:1"}); code != 2 {
		t.Errorf("--reason endpoint_goen: exit %d, want 2", code)
	}
}
