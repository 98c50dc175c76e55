package suppress_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/scalemodel"
	"github.com/gymhq/herald/suppress"
)

// BenchmarkRedisBytesPerKey measures what one suppressed address costs in
// Redis (docs/scale.md), added through the production list as a bounce or
// an unsubscribed number adds it, and the server's CPU of the lookup every
// send makes. Entries never expire; they grow with bounces, not with
// notifications. Run it once:
//
//	go test -run '^$' -bench RedisBytesPerKey -benchtime 1x ./suppress/
func BenchmarkRedisBytesPerKey(b *testing.B) {
	const n = 100_000
	srv := redistest.Start(b)
	addr := map[string]func(i int) string{
		"email": func(i int) string { return fmt.Sprintf("member.%08d@example-mail.com", i) },
		"sms":   func(i int) string { return fmt.Sprintf("+4477%08d", i) },
	}
	for _, ch := range []string{"email", "sms"} {
		b.Run("add/"+ch, func(b *testing.B) {
			l := suppress.NewRedis(srv.Client(), "", nil)
			defer l.Close()
			scalemodel.BytesPerKey(b, srv.Client(), n, func(ctx context.Context, i int) error {
				return l.Add(ctx, ch, addr[ch](i), "hard_bounce")
			})
		})
	}
	// The check before each send, on a list of n addresses, half of the
	// lookups missing (bytes/key is ~0: a lookup stores nothing).
	b.Run("lookup/email", func(b *testing.B) {
		l := suppress.NewRedis(srv.Client(), "", nil)
		defer l.Close()
		ctx := context.Background()
		scalemodel.BytesPerKey(b, srv.Client(), n, func(ctx context.Context, i int) error {
			return l.Add(ctx, "email", addr["email"](i), "hard_bounce")
		})
		before, err := scalemodel.ReadRedisStats(ctx, srv.Client())
		if err != nil {
			b.Fatal(err)
		}
		scalemodel.Each(b, n, func(ctx context.Context, i int) error {
			_, _, err := l.Lookup(ctx, "email", addr["email"](i*2))
			return err
		})
		after, err := scalemodel.ReadRedisStats(ctx, srv.Client())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric((after.CPUSeconds-before.CPUSeconds)*1e6/n, "redis-cpu-us/lookup")
	})
}
