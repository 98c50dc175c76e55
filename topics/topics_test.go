package topics_test

import (
	"testing"

	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/topics"
)

// TestChannelTopics: a channel's topics are named as docs/contracts.md §1
// has them, for a channel registered or not, and naming one again does not
// allocate (the dispatcher names one per notification).
func TestChannelTopics(t *testing.T) {
	for _, ch := range []notification.Channel{"email", "sms", "push", "inapp", "not-registered"} {
		if got, want := topics.Channel(ch), "herald."+string(ch)+".v1"; got != want {
			t.Errorf("Channel(%s) = %q, want %q", ch, got, want)
		}
		if got, want := topics.Retry(ch), "herald."+string(ch)+".retry.v1"; got != want {
			t.Errorf("Retry(%s) = %q, want %q", ch, got, want)
		}
		if got, want := topics.Channel(ch), "herald."+string(ch)+".v1"; got != want {
			t.Errorf("Channel(%s) the second time = %q, want %q", ch, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = topics.Channel("email"), topics.Retry("email") }); n != 0 {
		t.Errorf("naming a channel's topics again allocates %v times, want 0", n)
	}
}
