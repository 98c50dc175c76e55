package caps_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gymhq/herald/caps"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/scalemodel"
)

// BenchmarkRedisBytesPerKey measures what a frequency cap's window costs
// in Redis (docs/scale.md), taken through the production counter as a
// channel worker takes it: per notification of a capped category (the
// shipped reminders on push, 3 an hour), one sorted set per person,
// channel and category that expires a period after its last take. "1 per
// window" is each person's first reminder in the hour (the set's own
// cost); "3 per window" fills each person's window. Run it once:
//
//	go test -run '^$' -bench RedisBytesPerKey -benchtime 1x ./caps/
func BenchmarkRedisBytesPerKey(b *testing.B) {
	const n = 100_000
	srv := redistest.Start(b)
	l := caps.Limit{Max: 3, Per: time.Hour}
	now := time.Now()
	for _, per := range []int{1, 3} {
		b.Run(fmt.Sprintf("%d_per_window", per), func(b *testing.B) {
			c := caps.NewRedis(srv.Client(), "")
			scalemodel.BytesPerKey(b, srv.Client(), n, func(ctx context.Context, i int) error {
				person := fmt.Sprintf("mem_%08d", i/per)
				d, err := c.Take(ctx, caps.Key(person, "push", "reminders"), scalemodel.NotificationID(i), l, now.Add(time.Duration(i%per)*time.Minute))
				if err == nil && !d.Allowed {
					err = fmt.Errorf("take %d refused", i)
				}
				return err
			})
		})
	}
}
