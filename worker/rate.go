package worker

import (
	"context"
	"time"

	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
)

// Limiter admits provider calls at the fleet-wide rate (protect.Limiter).
// Wait blocks until one call may go and returns how long it waited; its
// errors are pauses (failure.IsPaused): no call was made.
type Limiter interface {
	Wait(ctx context.Context) (time.Duration, error)
}

// waitRate waits for the provider's shared rate before one provider call.
// The wait is bounded by the record's context, not by SendTimeout, so a
// backlog queues instead of timing out; if it was long, the claim is renewed
// before the call, so the lease always covers the call that follows (and a
// lease lost meanwhile means another worker owns the notification).
func (w *Worker) waitRate(ctx context.Context, n *notification.Notification, owner string) error {
	if w.cfg.Limiter == nil {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if stop := queue.Stopping(ctx); stop != nil {
		go func() {
			select {
			case <-stop:
				cancel()
			case <-wctx.Done():
			}
		}()
	}
	waited, err := w.cfg.Limiter.Wait(wctx)
	w.cfg.Metrics.Protect.RateLimitWait.WithLabelValues(w.ch).Observe(waited.Seconds())
	if waited > time.Millisecond {
		w.cfg.Metrics.Protect.RateLimitWaits.WithLabelValues(w.ch).Inc()
	}
	if err != nil {
		return err
	}
	if waited < w.cfg.Lease/4 {
		return nil
	}
	c, err := w.cfg.Store.Claim(ctx, n.ID, owner, w.cfg.Lease)
	if err != nil {
		return err
	}
	if !c.Acquired {
		return errLeaseLost
	}
	return nil
}
