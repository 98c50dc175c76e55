package worker

import (
	"testing"

	"github.com/gymhq/herald/obs"
)

// The outcome line's message is "notification <outcome>" for every
// outcome, and costs no allocation for the ones a worker logs.
func TestOutcomeMessage(t *testing.T) {
	for _, o := range []string{obs.OutcomeSent, obs.OutcomeDuplicate, obs.OutcomeSuppressed, obs.OutcomeCapped,
		obs.OutcomeRetry, obs.OutcomeFailed, obs.OutcomeDeadLettered, obs.OutcomeRefused, "something_new"} {
		if got, want := outcomeMessage(o), "notification "+o; got != want {
			t.Errorf("outcomeMessage(%q) = %q, want %q", o, got, want)
		}
	}
	var sink string
	if a := testing.AllocsPerRun(100, func() { sink = outcomeMessage(obs.OutcomeSent) }); a != 0 {
		t.Errorf("%v allocations for the sent line's message", a)
	}
	_ = sink
}
