package prefs_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/prefs"
)

// TestRedisOnCluster: each person's record is one key with its own hash
// tag, so an update's WATCH/MULTI names one slot; the coalesced lookups
// span people on every master in one pipeline, which the cluster client
// splits by node.
func TestRedisOnCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	client, err := dedupe.Connect(dedupe.Target{URL: c.URL(), Mode: dedupe.Cluster})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	s := prefs.NewRedis(client, "")
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	set := embedded(t)

	var people []string
	masters := map[string]bool{}
	for i := 0; len(people) < 30; i++ {
		p := fmt.Sprint("mem_", i)
		masters[c.MasterOf(s.Key(p))] = true
		people = append(people, p)
	}
	if len(masters) != 3 {
		t.Fatalf("30 people on %d masters, want 3", len(masters))
	}
	var wg sync.WaitGroup
	for _, p := range people {
		for _, body := range []string{`{"categories":{"marketing":{"email":false}}}`, `{"channels":{"sms":false}}`} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := prefs.Change(ctx, s, set, p, patch(t, body)); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := append([]string{"mem_nobody"}, people[i%10*3:i%10*3+3]...)
			m, err := s.Lookup(ctx, batch)
			if err != nil || len(m) != 3 {
				t.Errorf("Lookup(%v) = %v, %v", batch, m, err)
				return
			}
			for _, p := range batch[1:] {
				if allow, ok := m[p].Allows("marketing", notification.Email); allow || !ok {
					t.Errorf("%s: marketing by email %v, %v", p, allow, ok)
				}
				if allow, ok := m[p].Allows("updates", notification.SMS); allow || !ok {
					t.Errorf("%s: both concurrent changes should hold; sms %v, %v", p, allow, ok)
				}
			}
		}()
	}
	wg.Wait()
	if n := s.RoundTrips(); n >= 60 {
		t.Errorf("%d round trips for 60 lookups: not coalesced", n)
	}
}
