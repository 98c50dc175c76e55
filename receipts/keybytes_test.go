package receipts_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/scalemodel"
	"github.com/gymhq/herald/receipts"
)

// BenchmarkRedisBytesPerKey measures what one delivery receipt costs in
// Redis (docs/scale.md): the receipt hash under the provider message id
// and the notification's index key, written through the production store
// as a worker records an accepted send on a channel with receipts turned
// on (SMS with HERALD_TWILIO_STATUS_CALLBACK_URL, email with
// HERALD_SMTP_BOUNCE_TOKEN), then the provider's "delivered" callback.
// Both keys live 7 days. Run it once:
//
//	go test -run '^$' -bench RedisBytesPerKey -benchtime 1x ./receipts/
func BenchmarkRedisBytesPerKey(b *testing.B) {
	const n = 100_000
	srv := redistest.Start(b)
	s := receipts.NewRedis(srv.Client(), 0)
	now := time.Now()
	scalemodel.BytesPerKey(b, srv.Client(), n, func(ctx context.Context, i int) error {
		sid := fmt.Sprintf("SM%032x", uint64(i)*0x9e3779b97f4a7c15)
		if _, err := s.Accepted(ctx, receipts.Receipt{
			NotificationID: scalemodel.NotificationID(i), Channel: "sms", Provider: "twilio",
			ProviderMessageID: sid, Status: receipts.StatusAccepted, At: now,
		}); err != nil {
			return err
		}
		_, _, err := s.Record(ctx, sid, receipts.StatusDelivered, "", now.Add(3*time.Second))
		return err
	})
}
