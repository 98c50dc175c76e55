package dlq_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/dlq"
)

func TestFilter(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct{ reason, channel, since, want string }{
		{"", "fax", "", "--channel"},
		{"", "", "yesterday", "--since"},
		{"", "", "-2h", "--since"},
		// A typo selected nothing and replay exited 0, "filtered out 1"
		// (an outside tester's find).
		{"nonsense", "", "", `--reason: "nonsense" is not a reason herald writes (decode, invalid,`},
	} {
		if _, err := dlq.ParseFilter(tt.reason, tt.channel, tt.since, now); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseFilter(%q, %q, %q): %v, want an error naming %s", tt.reason, tt.channel, tt.since, err, tt.want)
		}
	}
	f, err := dlq.ParseFilter("rejected", "sms", "2h", now)
	if err != nil || !f.Since.Equal(now.Add(-2*time.Hour)) {
		t.Fatalf("%+v %v", f, err)
	}
	recent := now.Add(-time.Hour)
	for _, tt := range []struct {
		e    dlq.Entry
		want bool
	}{
		{dlq.Entry{Reason: "rejected", Channel: "sms", Stage: "sms", LastFailure: recent}, true},
		{dlq.Entry{Reason: "rejected", Channel: "email", Stage: "email", LastFailure: recent}, false},
		{dlq.Entry{Reason: "unavailable", Channel: "sms", Stage: "sms", LastFailure: recent}, false},
		{dlq.Entry{Reason: "rejected", Channel: "sms", Stage: "sms", LastFailure: now.Add(-3 * time.Hour)}, false},
	} {
		if got := f.Match(&tt.e); got != tt.want {
			t.Errorf("Match(%+v) = %v", tt.e, got)
		}
	}
	events, _ := dlq.ParseFilter("", "events", "", now)
	if !events.Match(&dlq.Entry{Stage: "dispatcher", Reason: "decode"}) || events.Match(&dlq.Entry{Stage: "sms", Channel: "sms"}) {
		t.Error("events selects the dispatcher's dead letters only")
	}
}
