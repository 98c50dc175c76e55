package redistest_test

import (
	"context"
	"testing"

	"github.com/gymhq/herald/internal/redistest"
)

// TestClusterFailover: a 3+3 cluster keeps a key's value when the replica
// of the key's master takes over.
func TestClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	ctx := context.Background()
	if err := c.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	from, to := c.Failover("k")
	if from == to || c.MasterOf("k") != to {
		t.Fatalf("failover from %s to %s; master now %s", from, to, c.MasterOf("k"))
	}
	if v, err := c.Client().Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET after the failover: %q, %v", v, err)
	}
}

// TestSentinelFailover: the sentinel names the replica after a failover.
func TestSentinelFailover(t *testing.T) {
	s := redistest.StartSentinel(t)
	from, to := s.Failover()
	if from == to || s.Master() != to {
		t.Fatalf("failover from %s to %s; master now %s", from, to, s.Master())
	}
}
