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
// backlog queues instead of timing out. The caller renews the claim after
// it if what is left of the lease might not cover the call (coverCall).
func (w *Worker) waitRate(ctx context.Context) error {
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
	return err
}

// leaseMargin is what a lease must have left beyond SendTimeout when a
// provider call starts: the Redis round trips around the call.
const leaseMargin = time.Second

// coverCall renews the claim, taken or last renewed at claimed, unless what
// is left of the lease covers a whole provider call; it returns when the
// claim was last renewed. A lease lost meanwhile means another worker owns
// the notification (errLeaseLost).
func (w *Worker) coverCall(ctx context.Context, n *notification.Notification, owner string, claimed time.Time) (time.Time, error) {
	now := w.cfg.Now()
	if now.Sub(claimed)+w.cfg.SendTimeout+leaseMargin < w.cfg.Lease {
		return claimed, nil
	}
	c, err := w.cfg.Store.Claim(ctx, n.ID, owner, w.cfg.Lease)
	if err != nil {
		return claimed, err
	}
	if !c.Acquired {
		return claimed, errLeaseLost
	}
	return now, nil
}
