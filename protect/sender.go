package protect

import (
	"context"
	"time"

	"github.com/gymhq/herald/channels"
)

// Sender guards a provider's Sender: each send first waits for the shared
// rate (Limiter, optional), then goes through the circuit breaker (Breaker,
// optional). The limiter sits outside the breaker so that a Redis problem in
// the limiter is never counted against the provider.
type Sender struct {
	Next    channels.Sender
	Limiter Limiter
	Breaker *Breaker
	// OnWait is told how long each send waited for the limiter. Optional.
	OnWait func(time.Duration)
}

var _ channels.Sender = (*Sender)(nil)

// Send implements channels.Sender.
func (s *Sender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	if s.Limiter != nil {
		waited, err := s.Limiter.Wait(ctx)
		if s.OnWait != nil {
			s.OnWait(waited)
		}
		if err != nil {
			return channels.Receipt{}, err
		}
	}
	if s.Breaker == nil {
		return s.Next.Send(ctx, m)
	}
	return s.Breaker.Do(func() (channels.Receipt, error) { return s.Next.Send(ctx, m) })
}

// Close implements channels.Sender.
func (s *Sender) Close() error { return s.Next.Close() }
