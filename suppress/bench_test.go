package suppress_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/suppress"
)

// BenchmarkLookup is the check every send pays: one HGET on a list of 10k
// entries, from parallel goroutines as the workers issue it.
func BenchmarkLookup(b *testing.B) {
	srv := redistest.Start(b)
	s := suppress.NewRedis(srv.Client(), "", nil)
	ctx := context.Background()
	for i := range 10000 {
		if err := s.Add(ctx, "sms", "+4477009"+strconv.Itoa(10000+i), "unsubscribed"); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, _, err := s.Lookup(ctx, "sms", "+4477009"+strconv.Itoa(i%20000+10000)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
