package dedupe_test

import (
	"context"
	"testing"
	"time"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/failure"
)

// TestOff: with the keys off every claim is acquired, even of a
// notification already marked sent — which is exactly what the chaos test
// measures — and invalid arguments are still refused.
func TestOff(t *testing.T) {
	ctx := context.Background()
	var s dedupe.Store = dedupe.Off{}
	for range 2 {
		c, err := s.Claim(ctx, "n1", "w1", time.Second)
		if err != nil || !c.Acquired {
			t.Fatalf("claim: %+v, %v", c, err)
		}
		if err := s.MarkSent(ctx, "n1", "w1", "p1"); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := s.Get(ctx, "n1"); err != nil || c.State != dedupe.StateNone {
		t.Fatalf("get: %+v, %v", c, err)
	}
	if _, err := s.Claim(ctx, "", "w1", time.Second); failure.ClassOf(err) != failure.Permanent {
		t.Fatalf("empty id: %v, want permanent", err)
	}
	if _, err := s.Claim(ctx, "n1", "w1", 0); failure.ClassOf(err) != failure.Permanent {
		t.Fatalf("zero lease: %v, want permanent", err)
	}
}
