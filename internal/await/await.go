// Package await waits, at start, for the servers a process needs (Kafka,
// Redis) to answer. Each is tried with jittered exponential backoff until it
// answers; every failed attempt is logged naming the server, its address and
// the variable that configures it; and what is still awaited can be read at
// any time, for a readiness probe.
//
// An unreachable server is not a reason to exit: on Kubernetes that would be
// a CrashLoopBackOff whose restarts fix nothing and whose back-off delays
// recovery once the server is back. Only an answer that waiting cannot
// change (credentials or a certificate refused) ends the wait with an error.
// It must never turn a malformed setting into a wait: configuration is
// validated before anything is awaited.
package await

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"
)

// Dependency is one server a process must reach before it starts work.
type Dependency struct {
	// Kind names the server, e.g. "kafka" or "redis".
	Kind string
	// Address is where it is looked for, as configured (passwords masked).
	Address string
	// Variable is the setting that configures Address, e.g.
	// HERALD_KAFKA_BROKERS: the line an operator reads names what to fix.
	Variable string
	// Reach makes one attempt and returns nil once the server answered and
	// is usable. An error wrapped with Refused ends the wait; any other
	// error is retried. Reach must return when ctx ends.
	Reach func(ctx context.Context) error
}

// String is how the dependency is named in logs and readiness messages:
// "kafka 127.0.0.1:9092 (HERALD_KAFKA_BROKERS)".
func (d Dependency) String() string {
	return fmt.Sprintf("%s %s (%s)", d.Kind, d.Address, d.Variable)
}

// Refused marks err as an answer waiting will not change (a refused login,
// an untrusted certificate): the wait ends with it.
func Refused(err error) error { return backoff.Permanent(err) }

// RefusedError is what All returns when a dependency refused: a setting
// that waiting cannot fix, so the process stops as for bad configuration.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// Backoff is the retry schedule of each dependency: the first retry after
// about half a second, doubling up to 15s, each delay jittered by ±50% so a
// fleet restarted together does not retry in step. It bounds both the log
// rate (about nine lines in the first minute, then four a minute) and how
// long after a server returns the process notices (at most 22.5s).
func Backoff() backoff.BackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval: 500 * time.Millisecond, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: 15 * time.Second,
	}
}

// Waiter waits for dependencies and reports which it still waits for. The
// zero value is ready to use; it logs nothing without Log.
type Waiter struct {
	Log *zap.Logger
	// NewBackOff returns the retry schedule for one dependency; nil is
	// Backoff.
	NewBackOff func() backoff.BackOff

	mu      sync.Mutex
	pending []*state // in the order given to All
}

type state struct {
	dep  Dependency
	last error // the last attempt's error; nil before the first
	done bool
}

// All reaches every dependency, concurrently, retrying each until it
// answers. It returns nil once all have answered, the first refusal, or
// ctx's error if ctx ends first. Call it once.
func (w *Waiter) All(ctx context.Context, deps ...Dependency) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	states := make([]*state, len(deps))
	w.mu.Lock()
	for i, d := range deps {
		states[i] = &state{dep: d}
	}
	w.pending = states
	w.mu.Unlock()

	refusals := make(chan error, len(deps))
	for _, s := range states {
		go func() {
			err := w.reach(ctx, s)
			if err != nil {
				cancel() // a refusal ends the other waits
			}
			refusals <- err
		}()
	}
	var refused error
	for range deps {
		if err := <-refusals; err != nil && refused == nil {
			refused = err
		}
	}
	if refused != nil {
		return refused
	}
	return ctx.Err()
}

// reach runs one dependency's attempts until it answers, is refused or ctx
// ends. It returns the refusal, or nil.
func (w *Waiter) reach(ctx context.Context, s *state) error {
	log := w.Log
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("dependency", s.dep.Kind), zap.String("address", s.dep.Address), zap.String("variable", s.dep.Variable))
	b := Backoff
	if w.NewBackOff != nil {
		b = w.NewBackOff
	}
	start := time.Now()
	attempts := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempts++
		err := s.dep.Reach(ctx)
		if err != nil && ctx.Err() == nil {
			w.mu.Lock()
			s.last = err
			w.mu.Unlock()
		}
		return struct{}{}, err
	},
		backoff.WithBackOff(b()),
		backoff.WithMaxElapsedTime(0), // wait as long as it takes
		backoff.WithNotify(func(err error, next time.Duration) {
			log.Warn("waiting for "+s.dep.String(), zap.Int("attempt", attempts), zap.Duration("retry_in", next.Round(time.Millisecond)), zap.Error(err))
		}),
	)
	if ctx.Err() != nil {
		return nil // the caller stopped waiting
	}
	if err != nil {
		return &RefusedError{Err: fmt.Errorf("%s: %w", s.dep, err)}
	}
	w.mu.Lock()
	s.done = true
	w.mu.Unlock()
	if attempts > 1 {
		log.Info("reached "+s.dep.String(), zap.Int("attempts", attempts), zap.Duration("waited", time.Since(start).Round(time.Millisecond)))
	}
	return nil
}

// Pending returns nil when nothing is awaited (before All, or once every
// dependency answered), or an error naming each dependency still awaited
// with its last error, for /readyz.
func (w *Waiter) Pending() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var parts []string
	for _, s := range w.pending {
		if s.done {
			continue
		}
		why := "not reached yet"
		if s.last != nil {
			why = oneLine(s.last.Error())
		}
		parts = append(parts, s.dep.String()+": "+why)
	}
	if len(parts) == 0 {
		return nil
	}
	return errors.New("waiting for " + strings.Join(parts, "; "))
}

// oneLine keeps a multi-line error (errors.Join) on one line.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
