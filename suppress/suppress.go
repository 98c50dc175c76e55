// Package suppress is herald's suppression list: addresses that a provider
// told us never to send to again (an SMS recipient who replied STOP, a push
// token whose app is gone, a mailbox that does not exist). Workers consult it
// before sending and feed it from permanent provider failures.
//
// Addresses are kept in plain form, normalised per channel. Operators must be
// able to list an entry and remove one by its address (a member who opts in
// again), which a hash would not allow; the list lives in the same Redis as
// the idempotency keys, which already sees every notification id, and is
// protected the same way (TLS, ACL). Tools print entries masked unless asked
// otherwise, and nothing here logs an address.
//
// It knows Redis and nothing of channels, providers or Kafka. Every error is
// retryable: a list that cannot be read means "do not send yet" (fail
// closed), never "send unchecked".
package suppress

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// Entry is one suppressed address.
type Entry struct {
	Channel string
	Address string
	// Reason is the failure reason that caused the suppression
	// ("unsubscribed", "invalid_address", "token_unregistered").
	Reason string
	// At is when it was suppressed (the first time).
	At time.Time
}

// Store is a suppression list. Safe for concurrent use.
type Store interface {
	// Add suppresses address on channel. It is idempotent: a second Add
	// keeps the first entry's reason and time.
	Add(ctx context.Context, channel, address, reason string) error
	// Lookup returns the entry for address on channel, and whether there is
	// one.
	Lookup(ctx context.Context, channel, address string) (Entry, bool, error)
	// Remove lifts the suppression and reports whether there was one.
	Remove(ctx context.Context, channel, address string) (bool, error)
	// List returns every entry on channel, or on every channel when channel
	// is "", ordered by channel and address.
	List(ctx context.Context, channel string) ([]Entry, error)
}

// Feeds reports whether a permanent failure with reason on channel should
// suppress the address: the channel's descriptor lists the reasons that
// mean the address itself can never receive on it
// (notification.Spec.SuppressOn).
func Feeds(channel, reason string) bool {
	s := notification.SpecOf(notification.Channel(channel))
	return s != nil && slices.Contains(s.SuppressOn, reason)
}

// Normalize returns the form an address is stored and looked up in, by its
// channel's rule (email addresses are lower-cased, since a bounce must
// match however the address was typed); trimmed for an unknown channel.
func Normalize(channel, address string) string {
	if s := notification.SpecOf(notification.Channel(channel)); s != nil {
		return s.Normalize(address)
	}
	return strings.TrimSpace(address)
}

// ErrInvalid is returned for an unknown channel or an empty address.
var ErrInvalid = errors.New("suppress: invalid argument")

// check is classified permanent: retrying a call with these arguments
// cannot succeed.
func check(channel, address string) error {
	if !validChannel(channel) {
		return failure.Perm(failure.ReasonInvalid, fmt.Errorf("%w: unknown channel %q (want %s)", ErrInvalid, channel, notification.Names()))
	}
	if address == "" {
		return failure.Perm(failure.ReasonInvalid, fmt.Errorf("%w: empty address", ErrInvalid))
	}
	return nil
}

func validChannel(c string) bool { return notification.Channel(c).Valid() }
