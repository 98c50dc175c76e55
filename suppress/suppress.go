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
	"github.com/gymhq/herald/failure"
	"strings"
	"time"
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

// Channels are the channels a suppression may be for.
var Channels = []string{"email", "sms", "push"}

// Reasons that feed suppression, by channel. A permanent failure with one of
// these reasons means the address itself can never receive on that channel:
// email invalid_address is a 5.1.x bounce (the SMTP classifier claims it only
// on an enhanced code or a RCPT TO 550/551/553, never a content verdict), SMS
// invalid_address is Twilio 21211/21614 and unsubscribed 21610, push
// token_unregistered is FCM UNREGISTERED and invalid_address an
// INVALID_ARGUMENT about the token.
var feedback = map[string][]string{
	"email": {"invalid_address"},
	"sms":   {"invalid_address", "unsubscribed"},
	"push":  {"invalid_address", "token_unregistered"},
}

// Feeds reports whether a permanent failure with reason on channel should
// suppress the address.
func Feeds(channel, reason string) bool {
	for _, r := range feedback[channel] {
		if r == reason {
			return true
		}
	}
	return false
}

// Normalize returns the form an address is stored and looked up in: email
// addresses trimmed and lower-cased (mailbox names are case-insensitive in
// practice, and a bounce must match however the address was typed), phone
// numbers and tokens trimmed.
func Normalize(channel, address string) string {
	a := strings.TrimSpace(address)
	if channel == "email" {
		a = strings.ToLower(a)
	}
	return a
}

// ErrInvalid is returned for an unknown channel or an empty address.
var ErrInvalid = errors.New("suppress: invalid argument")

// check is classified permanent: retrying a call with these arguments
// cannot succeed.
func check(channel, address string) error {
	if !validChannel(channel) {
		return failure.Perm(failure.ReasonInvalid, fmt.Errorf("%w: unknown channel %q (want email, sms or push)", ErrInvalid, channel))
	}
	if address == "" {
		return failure.Perm(failure.ReasonInvalid, fmt.Errorf("%w: empty address", ErrInvalid))
	}
	return nil
}

func validChannel(c string) bool {
	for _, v := range Channels {
		if v == c {
			return true
		}
	}
	return false
}
