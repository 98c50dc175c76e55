package receipts_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/receipts"
)

// TestRedisOnCluster: every command names one key, so a notification whose
// receipt and index keys sit on different masters works through the
// cluster client, callbacks and all, concurrently.
func TestRedisOnCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	s := receipts.NewRedis(c.Client(), 0)
	ctx := context.Background()

	// Pairs whose two keys are on two masters, spread over all three.
	type pair struct{ nid, pmid string }
	var pairs []pair
	masters := map[string]bool{}
	for i := 0; len(pairs) < 12 && i < 10000; i++ {
		p := pair{fmt.Sprintf("ntf%d", i), fmt.Sprintf("SM%d", i)}
		a, b := c.MasterOf(receipts.NotificationKey(p.nid)), c.MasterOf(receipts.ReceiptKey(p.pmid))
		if a != b {
			pairs = append(pairs, p)
			masters[a], masters[b] = true, true
		}
	}
	if len(pairs) < 12 || len(masters) != 3 {
		t.Fatalf("found %d pairs over %d masters", len(pairs), len(masters))
	}
	var wg sync.WaitGroup
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Accepted(ctx, accepted(p.nid, p.pmid)); err != nil {
				t.Errorf("Accepted %s: %v", p.nid, err)
				return
			}
			for _, st := range []receipts.Status{receipts.StatusDelivered, receipts.StatusSent} {
				if _, _, err := s.Record(ctx, p.pmid, st, "", t0); err != nil {
					t.Errorf("Record %s %s: %v", p.pmid, st, err)
				}
			}
			r, ok, err := s.Get(ctx, p.nid)
			if err != nil || !ok || r.Status != receipts.StatusDelivered || r.ProviderMessageID != p.pmid {
				t.Errorf("Get %s: %+v %v %v", p.nid, r, ok, err)
			}
		}()
	}
	wg.Wait()
}
