package dedupe

import (
	"strconv"
	"testing"
)

// TestBoxes: a value comes back in an interface holding it, made once per
// value (later calls allocate nothing), for up to maxBoxes values; past
// that, each call still returns the right value.
func TestBoxes(t *testing.T) {
	var b boxes[string]
	if got := b.of("owner-a"); got != any("owner-a") {
		t.Fatalf("of(owner-a) = %v", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = b.of("owner-a") }); n != 0 {
		t.Errorf("of(owner-a) again allocates %v times, want 0", n)
	}
	for i := range 2 * maxBoxes {
		v := "owner-" + strconv.Itoa(i)
		if got := b.of(v); got != any(v) {
			t.Fatalf("of(%s) = %v", v, got)
		}
	}
	if len(b.m) != maxBoxes {
		t.Errorf("%d values kept, want at most %d", len(b.m), maxBoxes)
	}
	var l boxes[int64]
	if got := l.of(45000); got != any(int64(45000)) {
		t.Errorf("of(45000) = %#v, want int64(45000)", got)
	}
}
