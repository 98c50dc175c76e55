package dedupe_test

import (
	"context"
	"testing"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/redistest"
)

// TestRearm: only a failed key becomes claimable again; sent and in-flight
// keys are left exactly as they are, so a replay can never send twice.
func TestRearm(t *testing.T) {
	srv := redistest.Start(t)
	for _, im := range impls(srv) {
		t.Run(im.name, func(t *testing.T) {
			h := im.new(t)
			s := h.store
			r, ok := s.(dedupe.Rearmer)
			if !ok {
				t.Fatalf("%T does not implement Rearmer", s)
			}
			ctx := context.Background()
			rearm := func(id string) bool {
				t.Helper()
				ok, err := r.Rearm(ctx, id)
				must(t, err)
				return ok
			}

			mustClaim(t, s, "failed", "a", long)
			must(t, s.MarkFailed(ctx, "failed", "a", "invalid_address"))
			mustClaim(t, s, "sent", "a", long)
			must(t, s.MarkSent(ctx, "sent", "a", "pm-1"))
			mustClaim(t, s, "flying", "a", long)

			if !rearm("failed") {
				t.Error("failed key not re-armed")
			}
			if c := mustClaim(t, s, "failed", "b", long); !c.Acquired {
				t.Errorf("re-armed key not claimable: %+v", c)
			}
			if rearm("sent") {
				t.Error("sent key re-armed")
			}
			if c := mustGet(t, s, "sent"); c.State != dedupe.StateSent || c.ProviderMessageID != "pm-1" {
				t.Errorf("sent key changed: %+v", c)
			}
			if rearm("flying") {
				t.Error("in-flight key re-armed")
			}
			if c := mustGet(t, s, "flying"); c.State != dedupe.StateInFlight || c.Owner != "a" {
				t.Errorf("in-flight key changed: %+v", c)
			}
			if rearm("absent") {
				t.Error("absent key reported re-armed")
			}
			if _, err := r.Rearm(ctx, ""); err == nil {
				t.Error("empty id accepted")
			}
		})
	}
}
