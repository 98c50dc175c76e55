package dedupe_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/scalemodel"
)

// keyBytesN is how many notifications each keybytes benchmark records.
const keyBytesN = 100_000

// BenchmarkRedisBytesPerKey measures what one sent notification's
// idempotency key costs in Redis (docs/scale.md): Claim then MarkSent
// through the production store, as a channel worker does, with ids,
// owners and provider message ids shaped as production makes them. The
// key lives HERALD_IDEMPOTENCY_RETENTION (7 days). Run it once:
//
//	go test -run '^$' -bench RedisBytesPerKey -benchtime 1x ./dedupe/
func BenchmarkRedisBytesPerKey(b *testing.B) {
	srv := redistest.Start(b)
	// Provider message ids as each provider returns them: email's is the
	// Message-ID herald sets (id@domain), Twilio's a 34-character SID,
	// FCM's a message name, projects/<project>/messages/<id>. A hash
	// field value over 64 bytes (Redis' hash-max-listpack-value) turns
	// the key from a listpack into a hash table, so FCM's name is
	// measured with a short and a longer project id.
	fcm := func(project string) func(string, int) string {
		return func(_ string, i int) string {
			return fmt.Sprintf("projects/%s/messages/0:%016d%%%016x", project, 1733300000000000+i, uint64(i)*0xc2b2ae3d27d4eb4f)
		}
	}
	for _, tc := range []struct {
		name       string
		providerID func(id string, i int) string
	}{
		{"email", func(id string, _ int) string { return id + "@mail.gym-chain.example" }},
		{"sms", func(_ string, i int) string { return fmt.Sprintf("SM%032x", uint64(i)*0x9e3779b97f4a7c15) }},
		{"push/project=gymapp", fcm("gymapp")},
		{"push/project=gym-chain-app", fcm("gym-chain-app")},
	} {
		ch, _, _ := strings.Cut(tc.name, "/")
		b.Run(tc.name, func(b *testing.B) {
			store := dedupe.NewRedis(srv.Client(), dedupe.Options{})
			defer store.Close()
			// herald run's owner: the pod name, 8 hex digits, and a
			// per-call counter (cmd/herald ownerID, worker.Handle).
			pod := "herald-" + ch + "-7d9f8b6c5d-x2k4q-3f9a0c1e#"
			scalemodel.BytesPerKey(b, srv.Client(), keyBytesN, func(ctx context.Context, i int) error {
				id := scalemodel.NotificationID(i)
				owner := pod + strconv.FormatUint(uint64(i), 36)
				c, err := store.Claim(ctx, id, owner, 45*time.Second) // HERALD_IDEMPOTENCY_LEASE
				if err != nil || !c.Acquired {
					return fmt.Errorf("claim %s: %+v %v", id, c, err)
				}
				return store.MarkSent(ctx, id, owner, tc.providerID(id, i))
			})
		})
	}
}
