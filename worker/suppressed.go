package worker

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/suppress"
)

// errSuppressed is the cause recorded for a suppressed notification.
var errSuppressed = errors.New("address is on the suppression list")

// suppressed answers the suppression list's lookup (look, begun with the
// claim; nil when there is no list or no address) once the claim is held. A
// suppressed address gets a durable outcome: the key is marked failed with
// reason "suppressed" (so a redelivery is a duplicate, not a send), one log
// line and the metrics. done reports that the record is finished. A list
// that cannot be read releases the claim and returns the error (fail
// closed: never send unchecked).
func (w *Worker) suppressed(ctx context.Context, m *queue.Message, n *notification.Notification, owner string, look *suppress.Pending, start time.Time) (done bool, err error) {
	if look == nil {
		return false, nil
	}
	e, ok, err := look.Wait()
	if errors.Is(err, suppress.ErrInvalid) {
		// An address the list cannot hold (blank once normalised) cannot be
		// on it; the provider will judge it.
		return false, nil
	}
	if err != nil {
		w.release(n, owner)
		return false, err
	}
	if !ok {
		return false, nil
	}
	if err := w.persist(ctx, func(ctx context.Context) error {
		return w.cfg.Store.MarkFailed(ctx, n.ID, owner, obs.OutcomeSuppressed)
	}); err != nil {
		return false, err
	}
	w.cfg.Metrics.Protect.Suppressed.WithLabelValues(w.ch, e.Reason).Inc()
	w.outcome(m, n, obs.OutcomeSuppressed, failure.Perm(failure.Reason(e.Reason), errSuppressed), "", start)
	return true, nil
}

// feedSuppression adds the address of a permanent failure that says it
// cannot receive (Twilio 21610/21211, FCM UNREGISTERED, SMTP 5.1.1) to the
// suppression list, so the next notification to it is not sent.
func (w *Worker) feedSuppression(ctx context.Context, n *notification.Notification, cause error) error {
	reason := string(failure.ReasonOf(cause))
	if w.cfg.OptOut != nil && failure.ReasonOf(cause) == failure.ReasonUnsubscribed && n.RecipientID != "" {
		// The person said STOP: their stored preferences say so too, so
		// the next event plans no message on this channel at all.
		if err := w.persist(ctx, func(ctx context.Context) error { return w.cfg.OptOut(ctx, n) }); err != nil {
			return err
		}
		w.log.Info("person opted out of the channel; preferences updated", zap.String("recipient_id", n.RecipientID), zap.String("notification_id", n.ID))
	}
	if w.cfg.Suppressions == nil || n.To == "" || failure.ClassOf(cause) != failure.Permanent || !suppress.Feeds(w.ch, reason) {
		return nil
	}
	err := w.persist(ctx, func(ctx context.Context) error {
		return w.cfg.Suppressions.Add(ctx, w.ch, n.To, reason)
	})
	if errors.Is(err, suppress.ErrInvalid) {
		return nil // nothing the list can hold
	}
	if err != nil {
		return err
	}
	w.cfg.Metrics.Protect.Suppressions.WithLabelValues(w.ch, reason).Inc()
	w.log.Info("address suppressed", zap.String("to", obs.MaskAddress(w.ch, n.To)),
		zap.String("reason", reason), zap.String("notification_id", n.ID))
	return nil
}

// rearmReplay makes a replayed notification's failed key claimable again
// (dlq.HeaderReplay, set by `herald dlq replay`). Only a failed key is reset:
// a sent key still stops a second send, so replaying twice delivers once.
func (w *Worker) rearmReplay(ctx context.Context, m *queue.Message, n *notification.Notification) error {
	if m.Header(dlq.HeaderReplay) == nil {
		return nil
	}
	r, ok := w.cfg.Store.(dedupe.Rearmer)
	if !ok {
		return nil
	}
	rearmed, err := r.Rearm(ctx, n.ID)
	if err != nil {
		return err
	}
	if rearmed {
		w.log.Info("replayed notification re-armed", zap.String("notification_id", n.ID))
	}
	return nil
}
