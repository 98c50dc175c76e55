package prefs_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/scalemodel"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/prefs"
)

// BenchmarkRedisBytesPerKey measures what one person's stored preferences
// cost in Redis (docs/scale.md), written through the production store as
// the gateway writes them: a person who turned SMS off and marketing email
// off (two choices), and one who also set quiet hours and a time zone.
// Keys never expire, and only people who chose something have one. The
// lookup row is the server's CPU of the dispatcher's lookup per recipient.
// Run it once:
//
//	go test -run '^$' -bench RedisBytesPerKey -benchtime 1x ./prefs/
func BenchmarkRedisBytesPerKey(b *testing.B) {
	const n = 100_000
	srv := redistest.Start(b)
	person := func(i int) string { return fmt.Sprintf("mem_%08d", i) }
	twoChoices := func(p *prefs.Prefs) error {
		p.Channels = map[notification.Channel]bool{notification.SMS: false}
		p.Categories = map[string]map[notification.Channel]bool{"marketing": {notification.Email: false}}
		return nil
	}
	withQuiet := func(p *prefs.Prefs) error {
		_ = twoChoices(p)
		p.Quiet = &prefs.QuietHours{From: 21*60 + 30, To: 7*60 + 30}
		p.Zone = "Europe/London"
		return nil
	}
	for _, tc := range []struct {
		name string
		fn   func(*prefs.Prefs) error
	}{{"two_choices", twoChoices}, {"with_quiet_hours", withQuiet}} {
		b.Run(tc.name, func(b *testing.B) {
			s := prefs.NewRedis(srv.Client(), "")
			defer s.Close()
			scalemodel.BytesPerKey(b, srv.Client(), n, func(ctx context.Context, i int) error {
				_, err := s.Update(ctx, person(i), tc.fn)
				return err
			})
		})
	}
	b.Run("lookup", func(b *testing.B) {
		s := prefs.NewRedis(srv.Client(), "")
		defer s.Close()
		ctx := context.Background()
		scalemodel.BytesPerKey(b, srv.Client(), n, func(ctx context.Context, i int) error {
			_, err := s.Update(ctx, person(i), twoChoices)
			return err
		})
		before, err := scalemodel.ReadRedisStats(ctx, srv.Client())
		if err != nil {
			b.Fatal(err)
		}
		scalemodel.Each(b, n, func(ctx context.Context, i int) error {
			_, err := s.Lookup(ctx, []string{person(i * 2)}) // half have none
			return err
		})
		after, err := scalemodel.ReadRedisStats(ctx, srv.Client())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric((after.CPUSeconds-before.CPUSeconds)*1e6/n, "redis-cpu-us/lookup")
	})
}
