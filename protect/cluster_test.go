package protect_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/protect"
)

// TestRedisLimiterOnCluster: redis_rate's GCRA script takes one key, so it
// runs on a Redis Cluster whatever slot the key hashes to: limiters on keys
// spread over every master admit their burst and then hold sends back.
func TestRedisLimiterOnCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	client, err := dedupe.Connect(dedupe.Target{URL: c.URL(), Mode: dedupe.Cluster})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	const rate = 3
	masters := map[string]bool{}
	for i := 0; i < 12; i++ {
		key := fmt.Sprintf("herald:k%d", i)
		masters[c.MasterOf("rate:"+key)] = true // redis_rate's own prefix
		l := protect.NewRedisLimiter(client, key, rate)
		for n := 0; n < rate; n++ {
			if waited, err := l.Wait(ctx); err != nil || waited > rate*1e9 {
				t.Fatalf("%s: send %d of the burst: waited %v, %v", key, n+1, waited, err)
			}
		}
		if i == 0 { // one key past its burst must wait for the rate
			if waited, err := l.Wait(ctx); err != nil || waited <= 0 {
				t.Fatalf("%s: send past the burst: waited %v, %v; want a wait", key, waited, err)
			}
		}
	}
	if len(masters) != 3 {
		t.Fatalf("limiter keys landed on %d masters, want 3", len(masters))
	}
}
