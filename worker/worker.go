// Package worker is the channel worker stage: it turns a notification record
// from herald.<channel>.v1 (or its retry topic) into exactly one delivery.
//
// The order of steps for one record, top to bottom, is Handle. Its contract
// with the runtime is queue.Handler's: return nil only when the record has a
// durable outcome — sent and recorded, recognised as a duplicate, scheduled
// on the retry topic, or written to the DLQ. Any dependency failure (Redis,
// Kafka) returns an error so the runtime keeps the record and tries again.
//
// It must never send without holding the idempotency claim (fail closed),
// never mark a key sent before the provider accepted, and never drop a
// duplicate that is in flight elsewhere: it waits for that worker's outcome
// or lease.
package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gymhq/herald/caps"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/httperr"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/receipts"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/topics"
)

// Renderer renders a notification for its channel. Errors are permanent:
// failure.ReasonRender, failure.ReasonOverBudget for an SMS that cannot be
// kept within its segments, failure.ReasonTooLarge for a push payload over
// the providers' limit.
type Renderer interface {
	Render(n *notification.Notification) (*channels.Message, error)
}

// Config wires a Worker. Zero durations take the documented defaults.
//
// Every hook that is handed a notification (Renderer, Defer, OptOut,
// OptedOut, CapOf, the Sender's message) may use it only until it returns:
// the notification, its Data's fields and its strings are the worker's
// pooled decode of the Kafka record, cleared and refilled with the next
// record's once Handle is done. A hook that keeps any of it copies it
// (Data with its Clone, strings with strings.Clone); schedule.Defer
// encodes it before it returns.
type Config struct {
	Channel   notification.Channel
	Sender    channels.Sender
	Renderer  Renderer
	Store     dedupe.Store
	Publisher queue.Publisher
	// Suppressions, if set, is read with the claim (suppress.Begin: on
	// shared Redis pipelines, in the claim's pipeline, so a duplicate costs
	// a lookup too) and acted on once the claim is held, before rendering:
	// a suppressed address gets the durable outcome "suppressed" and is
	// never sent. Permanent failures that say the address cannot
	// receive (suppress.Feeds) add it. See suppressed.go.
	Suppressions suppress.Store
	// Limiter, if set, is waited on before every provider call (rate.go).
	Limiter Limiter
	// Receipts, if set, records each accepted send (the provider's message
	// id → the notification), so that the provider's delivery callbacks
	// find their notification (package receipts). A failure to record is
	// logged and counted, never fails or repeats the send.
	Receipts receipts.Store
	// Provider names the provider in receipts when the sender's Receipt
	// does not (a single-provider channel).
	Provider string
	// Owner identifies this process in idempotency claims; unique per
	// process start, so a restarted pod never inherits a dead one's claims.
	// Each Handle call claims as Owner#n, so two copies of one notification
	// handled at once in this process (one from the retry topic, one
	// redelivered) can never both hold the claim.
	Owner string

	// Lease is the idempotency claim lease; it must outlast one send.
	// Default 45s.
	Lease time.Duration
	// SendTimeout bounds one provider call. Default 15s.
	SendTimeout time.Duration
	// QuickAttempts is how many times a retryable send is tried in process
	// before the record moves to the retry topic. Default 3.
	QuickAttempts int
	// MaxAttempts and MaxAge bound the whole retry ladder; past either, the
	// notification goes to the DLQ. Defaults 8 and 24h.
	MaxAttempts int
	MaxAge      time.Duration

	// Defer hands a notification to the scheduler (package schedule) until
	// due, to be published then to topic. With it, a retry waits in the
	// scheduler rather than on its retry topic holding an in-flight slot
	// and its key, and so does a notification read before it is due. nil
	// keeps the retry topic's own wait.
	Defer func(ctx context.Context, n *notification.Notification, due time.Time, topic string) error
	// Caps counts sends against frequency caps; CapOf returns n's cap
	// (its category's on its channel) and its policy (templates.CapDefer
	// or CapDrop), ok false for none. Both nil: no caps.
	Caps  caps.Counter
	CapOf func(n *notification.Notification) (l caps.Limit, policy string, ok bool)
	// QuietEnd, if set, is when the quiet hours that hold at end for n's
	// person (templates.Set.QuietEnd on their stored choices), the zero
	// time when none hold. A notification a cap defers is held until then
	// when the cap's release falls inside them.
	QuietEnd func(ctx context.Context, n *notification.Notification, at time.Time) (time.Time, error)
	// OptOut, if set, is told when a provider says the person opted out of
	// the channel (SMS STOP, 21610), so their preferences say so too.
	OptOut func(ctx context.Context, n *notification.Notification) error
	// OptedOut, if set, reports whether n's person has since turned its
	// category off on its channel in their stored preferences. It is asked
	// of notifications the scheduler fired (a reminder, one held for quiet
	// hours or a cap, a retry): the dispatcher read the preferences when it
	// planned them, which may be weeks before.
	OptedOut func(ctx context.Context, n *notification.Notification) (bool, error)

	Logger  *zap.Logger
	Metrics *obs.Metrics
	Now     func() time.Time
}

// deferSlack is how far ahead of its time a notification may arrive and
// still be handled in process rather than handed back to the scheduler.
const deferSlack = 2 * time.Second

// maxSkew bounds the wait for a notification the scheduler fired before
// this worker's clock says it is due: the clocks disagree, and the
// scheduler's is the one that decided.
const maxSkew = 5 * time.Second

// Worker handles one channel's records. Safe for concurrent use.
type Worker struct {
	cfg Config
	log *zap.Logger
	// outcomeLog writes the outcome lines, one per notification, without
	// the caller (obs.OutcomeLogger).
	outcomeLog *zap.Logger
	ch         string
	calls      atomic.Uint64
	// The channel's series of the metrics every sent notification
	// updates, looked up once rather than by label values per record.
	endToEnd, sendLatency prometheus.Observer
	sent                  prometheus.Counter
}

// New validates cfg and returns a Worker.
func New(cfg Config) (*Worker, error) {
	switch {
	case !cfg.Channel.Valid():
		return nil, fmt.Errorf("worker: invalid channel %q", cfg.Channel)
	case cfg.Sender == nil || cfg.Renderer == nil || cfg.Store == nil || cfg.Publisher == nil:
		return nil, errors.New("worker: sender, renderer, store and publisher are required")
	case cfg.Owner == "":
		return nil, errors.New("worker: owner is required")
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 45 * time.Second
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 15 * time.Second
	}
	if cfg.Lease <= cfg.SendTimeout {
		return nil, fmt.Errorf("worker: lease %v must exceed send timeout %v", cfg.Lease, cfg.SendTimeout)
	}
	if cfg.QuickAttempts <= 0 {
		cfg.QuickAttempts = 3
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = obs.NewMetrics()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger.With(zap.String("channel", string(cfg.Channel)))
	ch := string(cfg.Channel)
	return &Worker{cfg: cfg, log: log, outcomeLog: obs.OutcomeLogger(log), ch: ch,
		endToEnd: cfg.Metrics.EndToEnd.WithLabelValues(ch), sendLatency: cfg.Metrics.SendLatency.WithLabelValues(ch),
		sent: cfg.Metrics.Notifications.WithLabelValues(ch, obs.OutcomeSent, "")}, nil
}

// errStopping abandons a record whose partition is being released while it
// waits; it stays uncommitted for the next owner.
var errStopping = errors.New("worker: partition stopping")

// Handle processes one record. See the package comment for the contract.
func (w *Worker) Handle(ctx context.Context, m *queue.Message) error {
	start := w.cfg.Now()
	// In place: nothing writes to a fetched record's value, and a copy of
	// it was an allocation of the record's size per notification. Into a
	// reused notification and Data fields, which nothing here keeps past
	// Handle: the rendered message and every record written copy what
	// they need.
	dec := decodedPool.Get().(*decoded)
	defer dec.release()
	n, data, err := notification.DecodeSharedInto(m.Value, &dec.n, dec.data)
	dec.data = data
	if err == nil && n.Channel != w.cfg.Channel {
		err = failure.Errorf(failure.Poison, failure.ReasonInvalid, "notification for channel %s on the %s topic", n.Channel, w.cfg.Channel)
	}
	if err != nil {
		if err := dlq.Write(ctx, w.cfg.Publisher, dlq.Record(m, err, dlq.Info{Stage: w.ch, Channel: w.ch})); err != nil {
			return err
		}
		w.cfg.Metrics.DLQWrites.WithLabelValues(w.ch, string(failure.ReasonOf(err))).Inc()
		w.outcome(m, nil, obs.OutcomeDeadLettered, err, "", start)
		return nil
	}

	// Not due yet: the scheduler holds it, so no in-flight slot waits. One
	// the scheduler fired is due, whatever this clock says (it may be
	// behind); it waits below for its not-before time, at most a moment.
	if w.cfg.Defer != nil && m.Header(schedule.HeaderFired) == nil {
		now := w.cfg.Now()
		switch {
		case n.DueAt.Sub(now) > deferSlack:
			return w.deferred(ctx, m, n, n.DueAt, topics.Channel(w.cfg.Channel), start)
		case n.NotBefore.Sub(now) > deferSlack:
			return w.deferred(ctx, m, n, n.NotBefore, topics.Retry(w.cfg.Channel), start)
		}
	}
	// A retry waits for its not-before time, holding only its own key.
	if wait := n.NotBefore.Sub(w.cfg.Now()); wait > 0 {
		if m.Header(schedule.HeaderFired) != nil {
			wait = min(wait, maxSkew)
		}
		if err := w.sleep(ctx, wait); err != nil {
			return err
		}
	}

	if err := w.rearmReplay(ctx, m, n); err != nil {
		return err
	}
	owner := w.cfg.Owner + "#" + strconv.FormatUint(w.calls.Add(1), 36)
	// The suppression list is read alongside the claim: where both stores
	// share their pipelines (herald run on Redis), the lookup travels in the
	// claim's pipeline, one round trip for the two instead of one after
	// the other.
	var look *suppress.Pending
	if w.cfg.Suppressions != nil && n.To != "" {
		look = suppress.Begin(ctx, w.cfg.Suppressions, w.ch, n.To)
	}
	claim, waited, err := w.claim(ctx, n, owner)
	claimed := w.cfg.Now()
	if err == nil && claim.Acquired && waited && look != nil {
		// Another worker held the claim for a while: read the list afresh
		// (and only then: a lookup begun here and never waited for would
		// stay queued until some other call went out).
		look = suppress.Begin(ctx, w.cfg.Suppressions, w.ch, n.To)
	}
	if err != nil {
		return err
	}
	if !claim.Acquired {
		w.cfg.Metrics.DedupeHits.WithLabelValues(w.ch, string(claim.State)).Inc()
		w.outcome(m, n, obs.OutcomeDuplicate, nil, claim.ProviderMessageID, start)
		return nil
	}

	if done, err := w.suppressed(ctx, m, n, owner, look, start); done || err != nil {
		return err
	}
	if done, err := w.expired(ctx, m, n, owner, start); done || err != nil {
		return err
	}
	if done, err := w.optedOut(ctx, m, n, owner, start); done || err != nil {
		return err
	}
	if done, err := w.capped(ctx, m, n, owner, start); done || err != nil {
		return err
	}

	msg, err := w.cfg.Renderer.Render(n)
	if err != nil {
		if failure.ClassOf(err) != failure.Permanent {
			// The Renderer contract says render errors are permanent; hold
			// any implementation to it, keeping the reason of those that
			// keep it (render, over_budget, too_large).
			err = failure.Perm(failure.ReasonRender, err)
		}
		return w.fail(ctx, m, n, owner, err, start)
	}
	if len(msg.Shortened) > 0 {
		// A copy: a new series keeps its label values for the life of the
		// process, and n.Template is a substring of the whole record.
		w.cfg.Metrics.Shortened.WithLabelValues(w.ch, strings.Clone(n.Template)).Inc()
	}

	receipt, err := w.send(ctx, n, owner, msg, claimed)
	switch {
	case failure.IsPaused(err):
		// Not tried (circuit open, rate limiter unreachable): no outcome.
		// The runtime keeps the record and its gate holds it until the
		// channel resumes; no retry is spent.
		w.release(n, owner)
		return err
	case errors.Is(err, errLeaseLost):
		// Another worker took the claim over; it owns the outcome.
		w.cfg.Metrics.DedupeHits.WithLabelValues(w.ch, string(dedupe.StateInFlight)).Inc()
		w.outcome(m, n, obs.OutcomeDuplicate, nil, "", start)
		return nil
	case err == nil:
		if err := w.markSent(ctx, n, owner, receipt.ProviderMessageID); err != nil {
			return err
		}
		w.endToEnd.Observe(w.cfg.Now().Sub(n.CreatedAt).Seconds())
		w.recordAccepted(ctx, n, receipt)
		w.outcome(m, n, obs.OutcomeSent, nil, receipt.ProviderMessageID, start)
		return nil
	case failure.ClassOf(err) == failure.Retryable:
		return w.retryLater(ctx, m, n, owner, err, start)
	default:
		return w.fail(ctx, m, n, owner, err, start)
	}
}

// decoded is a notification and room for its Data's fields that Handle
// decodes a record into and reuses for the next
// (notification.DecodeSharedInto).
type decoded struct {
	n    notification.Notification
	data []notification.Field
}

var decodedPool = sync.Pool{New: func() any { return &decoded{data: make([]notification.Field, 0, 48)} }}

// release empties d and returns it to the pool, unless its room grew for
// an unusually large record, which would stay held by the pool.
func (d *decoded) release() {
	if cap(d.data) > 256 {
		return
	}
	d.n = notification.Notification{}
	clear(d.data[:cap(d.data)]) // no strings of the record kept alive
	d.data = d.data[:0]
	decodedPool.Put(d)
}

// claim takes the idempotency claim, waiting while another worker holds it.
// A duplicate in flight elsewhere is never dropped: that worker may fail,
// and then its lease expires and this one takes over. waited reports that
// it did wait.
func (w *Worker) claim(ctx context.Context, n *notification.Notification, owner string) (c dedupe.Claim, waited bool, err error) {
	for ; ; waited = true {
		c, err = w.cfg.Store.Claim(ctx, n.ID, owner, w.cfg.Lease)
		if err != nil || c.Acquired || c.State != dedupe.StateInFlight {
			return c, waited, err
		}
		wait := c.LeaseLeft
		if wait <= 0 || wait > time.Second {
			wait = time.Second // poll: the other worker may finish long before its lease ends
		}
		wait = wait/2 + time.Duration(rand.Int64N(int64(wait)/2+1))
		if err := w.sleep(ctx, wait); err != nil {
			return c, waited, err
		}
	}
}

// send calls the provider, retrying retryable failures a few times in
// process with exponential backoff and jitter. Before each call it waits
// for the fleet-wide rate and then makes sure the claim (taken at claimed)
// covers the call, renewing it when it might not.
//
// A pause (the circuit breaker refusing, the limiter unreachable) means no
// call was made. If an earlier attempt of this send did reach the provider
// and fail, that failure is returned instead: the record then climbs the
// retry ladder as any retryable failure does, so a record whose own sends
// keep re-opening the breaker still reaches its attempt and age limits.
func (w *Worker) send(ctx context.Context, n *notification.Notification, owner string, msg *channels.Message, claimed time.Time) (channels.Receipt, error) {
	b := &backoff.ExponentialBackOff{
		InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.5,
		Multiplier: 3, MaxInterval: 2 * time.Second,
	}
	b.Reset()
	var tried error // the last failure of a call that reached the provider
	paused := func(err error) error {
		if tried != nil {
			return tried
		}
		return err
	}
	for attempt := 1; ; attempt++ {
		if err := w.waitRate(ctx); err != nil {
			return channels.Receipt{}, paused(err)
		}
		var err error
		if claimed, err = w.coverCall(ctx, n, owner, claimed); err != nil {
			return channels.Receipt{}, err
		}
		sctx, cancel := context.WithTimeout(ctx, w.cfg.SendTimeout)
		t0 := time.Now()
		r, err := w.cfg.Sender.Send(sctx, msg)
		cancel()
		w.sendLatency.Observe(time.Since(t0).Seconds())
		if failure.IsPaused(err) {
			return r, paused(err)
		}
		if err != nil && failure.IsUnsent(err) {
			return r, err // its endpoint is down, known without a call: the retry ladder, not quick tries
		}
		if err != nil && failure.ReasonOf(err) == failure.ReasonTimeout { // ReasonOf allocates, even for nil
			// The provider may have accepted it. Tried again at once, a
			// provider that is slow rather than down would get it up to
			// QuickAttempts times per step of the ladder; the retry topic's
			// first retry waits (RetryDelay), and the breaker sees the
			// timeout meanwhile.
			w.log.Warn(TimedOutTryMessage, zap.String("notification_id", n.ID), // w.log names the channel
				zap.Int("try", attempt), zap.Duration("send_timeout", w.cfg.SendTimeout), zap.Error(err))
			return r, err
		}
		if err == nil || failure.ClassOf(err) != failure.Retryable || attempt >= w.cfg.QuickAttempts || ctx.Err() != nil {
			return r, err
		}
		if _, ok := httperr.RetryAfter(err); ok {
			return r, err // the provider said when: the retry topic waits for it (retryLater)
		}
		tried = err
		w.cfg.Metrics.Retries.WithLabelValues(w.ch, string(failure.ReasonOf(err))).Inc()
		if err := w.sleep(ctx, b.NextBackOff()); err != nil {
			return r, err
		}
	}
}

// TimedOutTryMessage is the warning logged when a provider call times out:
// whether the provider accepted it is unknown, so the retry (through the
// retry topic, not at once) may deliver it twice (docs/contracts.md §3).
const TimedOutTryMessage = "provider call timed out; it may have been accepted, so its retry may deliver the message twice"

// errLeaseLost ends a send loop whose claim another worker took over.
var errLeaseLost = errors.New("worker: idempotency lease lost to another worker")

// markSent records the provider's acceptance. It keeps trying while Redis is
// unavailable: giving up would let a redelivery send the message again.
func (w *Worker) markSent(ctx context.Context, n *notification.Notification, owner, providerID string) error {
	return w.persist(ctx, func(ctx context.Context) error {
		return w.cfg.Store.MarkSent(ctx, n.ID, owner, providerID)
	})
}

func (w *Worker) persist(ctx context.Context, op func(context.Context) error) error {
	b := &backoff.ExponentialBackOff{InitialInterval: 50 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 2 * time.Second}
	b.Reset()
	for {
		err := op(ctx)
		if err == nil || ctx.Err() != nil || failure.ClassOf(err) != failure.Retryable {
			return err // done, abandoned, or an error waiting will not fix
		}
		w.log.Warn("idempotency store unavailable; retrying", zap.Error(err))
		waited := queue.Waiting(ctx)
		select {
		case <-time.After(b.NextBackOff()):
		case <-ctx.Done():
			waited()
			return ctx.Err()
		}
		waited()
	}
}

// fail handles a permanent failure: DLQ first, then the key, so that a crash
// between the two repeats the DLQ write rather than losing it.
func (w *Worker) fail(ctx context.Context, m *queue.Message, n *notification.Notification, owner string, cause error, start time.Time) error {
	now := w.cfg.Now()
	first := n.FirstFailedAt
	if first.IsZero() {
		first = now
	}
	rec := dlq.Record(m, cause, dlq.Info{Stage: w.ch, Channel: w.ch, Attempts: n.Attempt + 1,
		FirstFailure: first, LastFailure: now, EventID: n.EventID, NotificationID: n.ID})
	if err := dlq.Write(ctx, w.cfg.Publisher, rec); err != nil {
		w.release(n, owner)
		return err
	}
	w.cfg.Metrics.DLQWrites.WithLabelValues(w.ch, string(failure.ReasonOf(cause))).Inc()
	if err := w.persist(ctx, func(ctx context.Context) error {
		return w.cfg.Store.MarkFailed(ctx, n.ID, owner, string(failure.ReasonOf(cause)))
	}); err != nil {
		return err
	}
	if err := w.feedSuppression(ctx, n, cause); err != nil {
		return err
	}
	w.outcome(m, n, obs.OutcomeFailed, cause, "", start)
	return nil
}

// retryLater moves a retryably failing notification to the retry topic with
// a not-before time, keeping its id, or to the DLQ when its attempts or age
// are used up. The claim is released after the retry record is durable.
func (w *Worker) retryLater(ctx context.Context, m *queue.Message, n *notification.Notification, owner string, cause error, start time.Time) error {
	if ctx.Err() != nil {
		w.release(n, owner)
		return ctx.Err()
	}
	now := w.cfg.Now()
	next := *n
	next.Attempt++
	if next.FirstFailedAt.IsZero() {
		next.FirstFailedAt = now
	}
	if next.Attempt >= w.cfg.MaxAttempts || now.Sub(next.FirstFailedAt) >= w.cfg.MaxAge {
		return w.fail(ctx, m, n, owner, failure.Perm(failure.ReasonExhausted,
			fmt.Errorf("after %d attempts over %v: %w", next.Attempt, now.Sub(next.FirstFailedAt).Round(time.Second), cause)), start)
	}
	next.NotBefore = now.Add(retryDelay(next.Attempt, cause))
	if !n.ExpiresAt.IsZero() && !next.NotBefore.Before(n.ExpiresAt) {
		// Its retry would come after its point (a reminder's class): it
		// ends here as expired, not later as exhausted or sent late.
		return w.endExpired(ctx, m, n, owner, start)
	}
	if w.cfg.Defer != nil {
		next.Deferred = notification.DeferRetry
		if err := w.cfg.Defer(ctx, &next, next.NotBefore, topics.Retry(w.cfg.Channel)); err != nil {
			return w.refusedRetry(ctx, m, n, owner, err, cause, start)
		}
		w.release(n, owner)
		w.outcome(m, n, obs.OutcomeRetry, cause, "", start)
		return nil
	}
	b, err := notification.Encode(&next)
	if err != nil {
		return w.refusedRetry(ctx, m, n, owner, err, cause, start)
	}
	// The retry carries the record's headers (trace context, event id) but
	// not a replay mark: re-arming is for the replayed record alone, not
	// for every later attempt of it.
	hs := make([]queue.Header, 0, len(m.Headers))
	for _, h := range m.Headers {
		if h.Key != dlq.HeaderReplay {
			hs = append(hs, h)
		}
	}
	rec := queue.Message{Topic: topics.Retry(w.cfg.Channel), Key: m.Key, Value: b, Headers: hs}
	if err := w.cfg.Publisher.Publish(ctx, rec); err != nil {
		return w.refusedRetry(ctx, m, n, owner, err, cause, start)
	}
	w.release(n, owner)
	w.outcome(m, n, obs.OutcomeRetry, cause, "", start)
	return nil
}

// refusedRetry handles a retry record that could not be made or written.
// A refusal that will never change (the broker will not take the record:
// too large for the retry topic, invalid) is this notification's permanent
// failure, so it goes to the DLQ rather than holding its partition for
// ever; anything else is a dependency failure the runtime retries.
func (w *Worker) refusedRetry(ctx context.Context, m *queue.Message, n *notification.Notification, owner string, err, cause error, start time.Time) error {
	if failure.ClassOf(err) == failure.Retryable {
		w.release(n, owner)
		return err
	}
	return w.fail(ctx, m, n, owner, fmt.Errorf("retry record refused: %w (the send had failed: %v)", err, cause), start)
}

// release gives the claim back when this call ends without an outcome for
// the notification (nothing was accepted by the provider), so the next
// attempt — a redelivery or the retry record — need not wait out the lease.
// Failure is harmless: the lease expires on its own.
func (w *Worker) release(n *notification.Notification, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.cfg.Store.Release(ctx, n.ID, owner); err != nil {
		w.log.Warn("release claim failed", zap.String("notification_id", n.ID), zap.Error(err))
	}
}

// RetryDelay is the wait before retry attempt n (1-based): 10s, 30s, 90s …
// capped at 30 minutes, with ±20% jitter so a provider outage's backlog does
// not return as one burst.
func RetryDelay(attempt int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < attempt && d < 30*time.Minute; i++ {
		d *= 3
	}
	d = min(d, 30*time.Minute)
	return d*8/10 + time.Duration(rand.Int64N(int64(d)*4/10))
}

// maxRetryAfter bounds how long a provider's Retry-After may hold a
// retry: a hint of a day would otherwise spend the message's
// HERALD_RETRY_MAX_AGE on one wait.
const maxRetryAfter = 30 * time.Minute

// retryDelay is how long retry attempt waits after cause: the ladder's
// RetryDelay, or the provider's Retry-After when that is longer (at most
// maxRetryAfter).
func retryDelay(attempt int, cause error) time.Duration {
	d := RetryDelay(attempt)
	if ra, ok := httperr.RetryAfter(cause); ok {
		d = max(d, min(ra, maxRetryAfter))
	}
	return d
}

func (w *Worker) sleep(ctx context.Context, d time.Duration) error {
	defer queue.Waiting(ctx)() // by design: liveness must not count it as stuck
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-queue.Stopping(ctx):
		return errStopping
	}
}

// logFields holds outcome's field slices between log lines.
var logFields = sync.Pool{New: func() any { s := make([]zap.Field, 0, 13); return &s }}

// outcome writes the one log line and the metric for a record's final
// outcome. Addresses are masked; bodies and data are never logged.
func (w *Worker) outcome(m *queue.Message, n *notification.Notification, outcome string, cause error, providerID string, start time.Time) {
	reason := ""
	if cause != nil {
		reason = string(failure.ReasonOf(cause))
	}
	if outcome == obs.OutcomeSent && reason == "" {
		w.sent.Inc()
	} else {
		w.cfg.Metrics.Notifications.WithLabelValues(w.ch, outcome, reason).Inc()
	}
	// A pooled slice sized for the most fields a line carries (4 + 5 +
	// 1 + 3): zap's cores encode the fields during the call and keep none
	// of them (its observer, for tests, copies them), and a new slice was
	// 832 bytes per notification (issue 14's allocation profile).
	fp := logFields.Get().(*[]zap.Field)
	fields := append((*fp)[:0],
		zap.String("outcome", outcome),
		zap.Int("partition", m.Partition),
		zap.Int64("offset", m.Offset),
		zap.Int64("latency_ms", w.cfg.Now().Sub(start).Milliseconds()),
	)
	if n != nil {
		fields = append(fields,
			zap.String("event_id", n.EventID),
			zap.String("notification_id", n.ID),
			zap.String("template", n.Template),
			zap.Int("attempt", n.Attempt),
			zap.String("to", obs.MaskAddress(w.ch, n.To)),
		)
	}
	// Always present (empty when no provider accepted anything), so a log
	// query can rely on the field as on the others of docs/contracts.md §8.
	fields = append(fields, zap.String("provider_message_id", providerID))
	if cause != nil {
		fields = append(fields, zap.String("reason", reason), zap.String("class", failure.ClassOf(cause).String()), zap.Error(cause))
	}
	switch msg := outcomeMessage(outcome); outcome {
	case obs.OutcomeSent, obs.OutcomeDuplicate, obs.OutcomeSuppressed, obs.OutcomeCapped, obs.OutcomeCancelled:
		w.outcomeLog.Info(msg, fields...)
	default:
		w.outcomeLog.Warn(msg, fields...)
	}
	clear(fields) // drop the strings and the error the line held
	*fp = fields[:0]
	logFields.Put(fp)
}

// outcomeMessage is the outcome line's message, "notification <outcome>",
// built once per outcome a worker logs, so the line costs no string built
// per notification.
func outcomeMessage(outcome string) string {
	if msg, ok := outcomeMessages[outcome]; ok {
		return msg
	}
	return "notification " + outcome
}

var outcomeMessages = func() map[string]string {
	m := map[string]string{}
	for _, o := range []string{obs.OutcomeSent, obs.OutcomeDuplicate, obs.OutcomeSuppressed, obs.OutcomeCapped,
		obs.OutcomeRetry, obs.OutcomeFailed, obs.OutcomeDeadLettered, obs.OutcomeDeferred, obs.OutcomeCancelled, obs.OutcomeExpired} {
		m[o] = "notification " + o
	}
	return m
}()

// recordAccepted notes an accepted send in the receipts store, when there
// is one, for the provider's delivery callbacks to find.
func (w *Worker) recordAccepted(ctx context.Context, n *notification.Notification, r channels.Receipt) {
	if w.cfg.Receipts == nil || r.ProviderMessageID == "" {
		return
	}
	provider := r.Provider
	if provider == "" {
		provider = w.cfg.Provider
	}
	_, err := w.cfg.Receipts.Accepted(ctx, receipts.Receipt{
		NotificationID: n.ID, Channel: n.Channel, Provider: provider,
		ProviderMessageID: r.ProviderMessageID, Status: receipts.StatusAccepted, At: w.cfg.Now(),
	})
	if err != nil {
		w.log.Warn("delivery receipt not recorded; the provider's status callbacks for this message will be counted as unknown",
			zap.String("notification_id", n.ID), zap.Error(err))
	}
}
