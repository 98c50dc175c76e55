package suppress_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/suppress"
)

// TestRedisOnCluster: each channel's list is one hash, so every command
// names one key; the coalesced lookups span the channels' slots in one
// pipeline, which the cluster client splits by node.
func TestRedisOnCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	client, err := dedupe.Connect(dedupe.Target{URL: c.URL(), Mode: dedupe.Cluster})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	// Prefixes whose three channel keys sit on three masters.
	prefix := ""
	for i := 0; prefix == "" && i < 1000; i++ {
		p := fmt.Sprintf("t%d:", i)
		seen := map[string]bool{}
		for _, ch := range notification.Known() {
			seen[c.MasterOf(p+string(ch))] = true
		}
		if len(seen) == 3 {
			prefix = p
		}
	}
	if prefix == "" {
		t.Fatal("no prefix puts the three lists on three masters")
	}
	s := suppress.NewRedis(client, prefix, nil)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	addrs := map[string]string{"email": "ana@example.com", "sms": "+447700900123", "push": "token-1"}
	for ch, a := range addrs {
		if err := s.Add(ctx, ch, a, "unsubscribed"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		for ch, a := range addrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, ok, err := s.Lookup(ctx, ch, a); err != nil || !ok {
					t.Errorf("Lookup %s %s: %v, %v", ch, a, ok, err)
				}
				if _, ok, err := s.Lookup(ctx, ch, "other"+fmt.Sprint(i)); err != nil || ok {
					t.Errorf("Lookup of an address not listed: %v, %v", ok, err)
				}
			}()
		}
	}
	wg.Wait()
	if n := s.RoundTrips(); n >= 360 {
		t.Errorf("%d round trips for 360 lookups: not coalesced", n)
	}
	list, err := s.List(ctx, "")
	if err != nil || len(list) != 3 {
		t.Fatalf("List: %v, %v", list, err)
	}
	if ok, err := s.Remove(ctx, "sms", addrs["sms"]); err != nil || !ok {
		t.Fatalf("Remove: %v, %v", ok, err)
	}
}
