package protect

import (
	"context"

	"github.com/gymhq/herald/channels"
)

// Sender sends through a provider's circuit breaker. (The shared rate is
// waited for by the caller before each call — the channel worker, which can
// renew its idempotency claim after a long wait — not here, where the wait
// would eat into the call's timeout.)
type Sender struct {
	Next    channels.Sender
	Breaker *Breaker
}

var _ channels.Sender = (*Sender)(nil)

// Send implements channels.Sender.
func (s *Sender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	if s.Breaker == nil {
		return s.Next.Send(ctx, m)
	}
	return s.Breaker.Do(func() (channels.Receipt, error) { return s.Next.Send(ctx, m) })
}

// Close implements channels.Sender.
func (s *Sender) Close() error { return s.Next.Close() }
