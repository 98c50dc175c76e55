package schedule

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gymhq/herald/internal/redistest"
)

// Calls of one combined batch with different ttls still run in the
// batch's order: of A (ttl 1h, key x), B (2h, key k) and C (1h, key k),
// B removes the entry under k, as one call after another would. Before,
// the calls with the first call's ttl all ran first, and C was told of
// B's entry (an outside review).
func TestCombinedCancelsOfMixedTTLsRunInOrder(t *testing.T) {
	srv := redistest.Start(t)
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	r := NewRedis(srv.Client(), RedisOptions{Prefix: "mixed", Clock: func() time.Time { return t0 }})
	ctx := context.Background()
	if _, err := r.Add(ctx, []Entry{{ID: "e", Due: t0.Add(time.Hour), Keys: []string{"k"}, EventTime: t0, Record: []byte("rec")}}); err != nil {
		t.Fatal(err)
	}
	call := func(k string, ttl time.Duration) *joined[cancelCall, []Entry] {
		return &joined[cancelCall, []Entry]{ctx: ctx, req: cancelCall{cs: []Cancellation{{Key: k, At: t0.Add(time.Hour)}}, ttl: ttl}}
	}
	a, b, c := call("x", time.Hour), call("k", 2*time.Hour), call("k", time.Hour)
	r.runCancels(ctx, []*joined[cancelCall, []Entry]{a, b, c})
	ids := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	if a.err != nil || b.err != nil || c.err != nil || len(a.ans) != 0 || !slices.Equal(ids(b.ans), []string{"e"}) || len(c.ans) != 0 {
		t.Errorf("A told %v (%v), B %v (%v), C %v (%v); want B told of e, alone", ids(a.ans), a.err, ids(b.ans), b.err, ids(c.ans), c.err)
	}
}
