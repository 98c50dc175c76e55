package dedupe_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/redistest"
)

// BenchmarkClaimMarkSent is the hot path of a channel worker: claim a new
// notification, then record it sent, from many goroutines at once. Each op
// is one message. batch=1 is the baseline without coalescing (two round trips
// per message); compare its roundtrips/msg and ns/op with the default.
func BenchmarkClaimMarkSent(b *testing.B) {
	srv := redistest.Start(b)
	for _, bc := range []struct {
		name  string
		store func() (dedupe.Store, func() uint64)
	}{
		{"redis/batch=1", func() (dedupe.Store, func() uint64) {
			r := dedupe.NewRedis(srv.Client(), dedupe.Options{BatchMax: 1})
			return r, r.RoundTrips
		}},
		{"redis/batch=256", func() (dedupe.Store, func() uint64) {
			r := dedupe.NewRedis(srv.Client(), dedupe.Options{})
			return r, r.RoundTrips
		}},
		{"memory", func() (dedupe.Store, func() uint64) {
			return dedupe.NewMemory(dedupe.Options{}), nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if err := srv.FlushAll(); err != nil {
				b.Fatal(err)
			}
			store, roundTrips := bc.store()
			defer store.Close()
			ctx := context.Background()
			if _, err := store.Get(ctx, "warm-up"); err != nil { // a live connection
				b.Fatal(err)
			}
			var next atomic.Uint64
			var before uint64
			if roundTrips != nil {
				before = roundTrips()
			}
			b.SetParallelism(16) // workers run many sends per core
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				owner := "w" + strconv.FormatUint(next.Add(1), 10)
				for pb.Next() {
					id := "n" + strconv.FormatUint(next.Add(1), 10)
					c, err := store.Claim(ctx, id, owner, long)
					if err != nil || !c.Acquired {
						b.Errorf("Claim(%s) = %+v, %v", id, c, err)
						return
					}
					if err := store.MarkSent(ctx, id, owner, "pm-"+id); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if roundTrips != nil {
				b.ReportMetric(float64(roundTrips()-before)/float64(b.N), "roundtrips/msg")
			}
		})
	}
}
