package suppress_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/suppress"
)

// BenchmarkLookup is the check every send pays, on a list of 10k entries,
// from parallel goroutines as the workers issue it: herald's coalesced
// lookups against one plain HGET per check, in the same run.
func BenchmarkLookup(b *testing.B) {
	srv := redistest.Start(b)
	s := suppress.NewRedis(srv.Client(), "", nil)
	defer s.Close()
	ctx := context.Background()
	for i := range 10000 {
		if err := s.Add(ctx, "sms", "+4477009"+strconv.Itoa(10000+i), "unsubscribed"); err != nil {
			b.Fatal(err)
		}
	}
	addr := func(i int) string { return "+4477009" + strconv.Itoa(i%20000+10000) }
	b.Run("coalesced", func(b *testing.B) {
		before := s.RoundTrips()
		b.SetParallelism(32) // the workers' concurrency, roughly
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, _, err := s.Lookup(ctx, "sms", addr(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.ReportMetric(float64(s.RoundTrips()-before)/float64(b.N), "roundtrips/op")
	})
	b.Run("hget-per-check", func(b *testing.B) {
		c := srv.Client()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if err := c.HGet(ctx, suppress.DefaultPrefix+"sms", addr(i)).Err(); err != nil && err != redis.Nil {
					b.Fatal(err)
				}
			}
		})
		b.ReportMetric(1, "roundtrips/op")
	})
}
