package dedupe

import (
	"testing"
)

// TestLeaseArg: a lease comes back in an interface holding it, boxed once
// while it stays the same (later calls allocate nothing), and a changed
// lease comes back as itself.
func TestLeaseArg(t *testing.T) {
	r := NewRedis(nil, Options{Pipes: nil})
	defer r.Close()
	if got := r.leaseArg(45000); got != any(int64(45000)) {
		t.Fatalf("leaseArg(45000) = %#v", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = r.leaseArg(45000) }); n != 0 {
		t.Errorf("leaseArg(45000) again allocates %v times, want 0", n)
	}
	for _, ms := range []int64{30000, 45000, 1} {
		if got := r.leaseArg(ms); got != any(ms) {
			t.Errorf("leaseArg(%d) = %#v", ms, got)
		}
	}
	if got := r.retention; got != any(r.opts.Retention.Milliseconds()) {
		t.Errorf("retention argument %#v, want %d", got, r.opts.Retention.Milliseconds())
	}
}
