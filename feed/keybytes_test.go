package feed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/scalemodel"
)

// BenchmarkRedisBytesPerKey measures what one in-app feed item costs in
// Redis (docs/scale.md), appended through the production store as the
// inapp stage appends it (the item, its id in the feed's id set and
// position hash, the unread count; five keys per person), with the shipped
// booking confirmation's title, body and data. A feed keeps
// HERALD_INAPP_FEED_MAX_ITEMS (200) items for HERALD_INAPP_FEED_MAX_AGE
// (30 days). "1 per feed" is a person's only item (the feed's own keys
// dominate); "20 per feed" and "100 per feed" put the same items in a
// twentieth and a hundredth as many feeds. Run it once:
//
//	go test -run '^$' -bench RedisBytesPerKey -benchtime 1x ./feed/
func BenchmarkRedisBytesPerKey(b *testing.B) {
	const n = 100_000
	srv := redistest.Start(b)
	now := time.Now()
	for _, per := range []int{1, 20, 100} {
		b.Run(fmt.Sprintf("%d_per_feed", per), func(b *testing.B) {
			s := feed.NewRedis(srv.Client(), feed.Limits{})
			scalemodel.BytesPerKey(b, srv.Client(), n, func(ctx context.Context, i int) error {
				person := fmt.Sprintf("mem_%08d", i/per)
				it := feed.Item{
					ID: scalemodel.NotificationID(i), EventID: fmt.Sprintf("evt_01JD8X%06d", i), EventType: "gym.booking.confirmed",
					Title: "You're booked: Pilates Core",
					Body:  "See you on Saturday 5 December at 07:00, Studio 2, Shoreditch. Arrive a few minutes early to get set up.",
					Data:  map[string]string{"class_id": fmt.Sprintf("cls_%06d", i%5000), "booking_id": fmt.Sprintf("bkg_01JD8X%06d", i)},
				}
				_, err := s.Append(ctx, person, it, now.Add(time.Duration(i)*time.Millisecond))
				return err
			})
		})
	}
}
