package worker

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/caps"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/topics"
)

// Cap policies, as templates/categories.yaml names them.
const (
	capDefer = "defer"
	capDrop  = "drop"
)

// deferred hands n to the scheduler until due, to be published to topic
// then. Nothing was claimed: the record's outcome is the schedule record.
func (w *Worker) deferred(ctx context.Context, m *queue.Message, n *notification.Notification, due time.Time, topic string, start time.Time) error {
	if err := w.cfg.Defer(ctx, n, due, topic); err != nil {
		return err
	}
	w.cfg.Metrics.Notifications.WithLabelValues(w.ch, obs.OutcomeDeferred, "").Inc()
	w.log.Debug("notification deferred", zap.String("notification_id", n.ID), zap.String("deferred", n.Deferred),
		zap.Time("due_at", due), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset),
		zap.Int64("latency_ms", w.cfg.Now().Sub(start).Milliseconds()))
	return nil
}

// capped counts n against its category's frequency cap on the channel,
// after the claim and before rendering. Over the cap, policy drop gives
// the durable outcome capped (the key is marked, so a redelivery is a
// duplicate); policy defer releases the claim and hands n to the
// scheduler until the window has room. done reports that n's record has
// its outcome.
func (w *Worker) capped(ctx context.Context, m *queue.Message, n *notification.Notification, owner string, start time.Time) (done bool, err error) {
	if w.cfg.Caps == nil || w.cfg.CapOf == nil || n.Priority == notification.High {
		return false, nil
	}
	l, policy, ok := w.cfg.CapOf(n)
	if !ok {
		return false, nil
	}
	key := capKey(n)
	d, err := w.cfg.Caps.Take(ctx, key, n.ID, l, w.cfg.Now())
	if err != nil {
		w.release(n, owner)
		return true, failure.Retry(failure.ReasonUnavailable, fmt.Errorf("frequency cap %s: %w", key, err))
	}
	if d.Allowed {
		return false, nil
	}
	due := d.RetryAt
	if policy == capDefer && w.cfg.QuietEnd != nil {
		// The cap's room may come inside the person's quiet hours, which
		// the dispatcher checked for the time it planned, not for this
		// one (an outside tester's capped reminders went out in them).
		end, err := w.cfg.QuietEnd(ctx, n, due)
		if err != nil {
			w.release(n, owner)
			return true, failure.Retry(failure.ReasonUnavailable, fmt.Errorf("quiet hours of %s: %w", n.RecipientID, err))
		}
		if end.After(due) {
			due = end
		}
	}
	late := !n.ExpiresAt.IsZero() && !due.Before(n.ExpiresAt) // it would wait past its point
	if policy == capDefer && w.cfg.Defer != nil && !late {
		next := *n
		next.Deferred = notification.DeferCap
		if err := w.cfg.Defer(ctx, &next, due, topics.Channel(w.cfg.Channel)); err != nil {
			w.release(n, owner)
			return true, err
		}
		w.release(n, owner)
		w.cfg.Metrics.Notifications.WithLabelValues(w.ch, obs.OutcomeDeferred, "").Inc()
		w.outcomeLog.Info("notification deferred by its frequency cap", zap.String("outcome", obs.OutcomeDeferred), zap.String("deferred", notification.DeferCap),
			zap.String("event_id", n.EventID), zap.String("notification_id", n.ID), zap.String("category", n.Category),
			zap.Time("due_at", due), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset))
		return true, nil
	}
	if err := w.persist(ctx, func(ctx context.Context) error {
		return w.cfg.Store.MarkFailed(ctx, n.ID, owner, obs.OutcomeCapped)
	}); err != nil {
		return true, err
	}
	w.outcome(m, n, obs.OutcomeCapped, nil, "", start)
	return true, nil
}

// expired ends n without a send when its expiry has passed (a reminder
// whose class has started, held past it by a scheduler or a provider that
// was down, or a backlog). Its key is marked failed with reason expired,
// so a redelivery is a duplicate, as a capped one's is. done reports that
// n's record has its outcome.
func (w *Worker) expired(ctx context.Context, m *queue.Message, n *notification.Notification, owner string, start time.Time) (done bool, err error) {
	if n.ExpiresAt.IsZero() || w.cfg.Now().Before(n.ExpiresAt) {
		return false, nil
	}
	return true, w.endExpired(ctx, m, n, owner, start)
}

// endExpired ends n unsent as expired: its key is marked failed with that
// reason, and its outcome logged.
func (w *Worker) endExpired(ctx context.Context, m *queue.Message, n *notification.Notification, owner string, start time.Time) error {
	if err := w.persist(ctx, func(ctx context.Context) error {
		return w.cfg.Store.MarkFailed(ctx, n.ID, owner, obs.OutcomeExpired)
	}); err != nil {
		return err
	}
	w.outcome(m, n, obs.OutcomeExpired, nil, "", start)
	return nil
}

// optedOut cancels a notification the scheduler fired whose person has
// turned its category off on its channel since it was planned (a reminder
// booked weeks ago, a message held for quiet hours): its key is marked
// failed with reason opted_out, so a redelivery is a duplicate, and the
// outcome is cancelled. A lookup that fails is retried, as the claim is:
// sending without knowing would ignore an opt-out.
func (w *Worker) optedOut(ctx context.Context, m *queue.Message, n *notification.Notification, owner string, start time.Time) (done bool, err error) {
	if w.cfg.OptedOut == nil || m.Header(schedule.HeaderFired) == nil {
		return false, nil
	}
	out, err := w.cfg.OptedOut(ctx, n)
	if err != nil {
		w.release(n, owner)
		return true, failure.Retry(failure.ReasonUnavailable, fmt.Errorf("preferences of %s: %w", n.RecipientID, err))
	}
	if !out {
		return false, nil
	}
	if err := w.persist(ctx, func(ctx context.Context) error {
		return w.cfg.Store.MarkFailed(ctx, n.ID, owner, obs.ReasonOptedOut)
	}); err != nil {
		return true, err
	}
	w.outcome(m, n, obs.OutcomeCancelled, failure.Errorf(failure.Permanent, obs.ReasonOptedOut,
		"%s turned %s off on %s after it was planned", n.RecipientID, categoryOf(n), n.Channel), "", start)
	return true, nil
}

// categoryOf is n's category; records written before categories existed
// have none and count as transactional.
func categoryOf(n *notification.Notification) string { return cmp.Or(n.Category, "transactional") }

// capKey is the counter key of n's person, channel and category.
func capKey(n *notification.Notification) string {
	return caps.Key(n.RecipientID, string(n.Channel), categoryOf(n))
}
