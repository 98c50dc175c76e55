// Package receipts keeps what happened to a message after its provider
// accepted it: sent to the carrier, delivered, undelivered, bounced or
// failed. The worker's durable outcome stops at "the provider accepted it"
// (package dedupe's sent); a receipt is the provider's later word on the
// same message, keyed by the provider's message id and joined to the
// notification id when the worker records the acceptance.
//
// A receipt's status only moves forward (see Status). Providers send status
// callbacks at least once and in no guaranteed order, so a late "sent" after
// "delivered" must change nothing, and the first final answer stands.
//
// It must never send, retry or decide a notification's durable outcome: a
// receipt arrives after the Kafka record was committed, and an undelivered
// SMS is not sent again by herald. What it may do is feed the suppression
// list (an address the carrier says cannot exist, a recipient who replied
// STOP), count outcomes per provider, and report each final answer to a
// callback (OnOutcome) that the integrator wires to traces or to a
// failover's choice of provider (UndeliveredRate).
//
// # What each channel can tell
//
//   - SMS (Twilio): status callbacks, signed with the account's auth token,
//     to the StatusCallback URL given when the message was created:
//     queued → sent → delivered | undelivered | failed, with an ErrorCode on
//     the last two. TwilioHandler receives them; the codes it acts on are
//     listed on DescribeTwilioCode.
//   - Push (FCM HTTP v1): acceptance is the only answer. FCM reports no
//     delivery to the device to the sender; UNREGISTERED and
//     INVALID_ARGUMENT about the token come back synchronously from the
//     send and are already handled by channels/push and suppression. A push
//     receipt stops at accepted.
//   - Email (SMTP): the relay's 250 is acceptance. Bounces are asynchronous
//     delivery status notifications (RFC 3464: multipart/report with a
//     message/delivery-status part) mailed back to the envelope sender,
//     hours later and from another system. ParseDSN reads one: the
//     original Message-ID (the email channel's ProviderMessageID) and, per
//     recipient, the action and status code, mapped to a Status
//     (DSNRecipient.Receipt) and a suppression reason (5.1.x is
//     invalid_address). Fetching the bounce mailbox is not part of this
//     package yet; a reader would call Store.Record with the Message-ID,
//     StatusBounced and the DSN's Status ("5.1.1").
//
// # Cluster
//
// Every Redis command this package sends names exactly one key, so it works
// unchanged on Redis Cluster (see Redis for the key layout).
package receipts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// Status is where a message is on its way to the recipient.
type Status string

// The statuses, in the order they can be reached. Delivered, undelivered,
// bounced and failed are final and share the last rank: whichever arrives
// first stands.
const (
	StatusAccepted    Status = "accepted"    // the provider took the message
	StatusSent        Status = "sent"        // handed to the carrier or next hop
	StatusDelivered   Status = "delivered"   // the carrier confirmed delivery
	StatusUndelivered Status = "undelivered" // the carrier gave up (SMS)
	StatusBounced     Status = "bounced"     // a delivery status notification said no (email)
	StatusFailed      Status = "failed"      // the provider gave up before sending
)

// Statuses lists every status, for pre-creating metric series.
var Statuses = []Status{StatusAccepted, StatusSent, StatusDelivered, StatusUndelivered, StatusBounced, StatusFailed}

// Rank orders statuses: 1 accepted, 2 sent, 3 every final status, 0 an
// unknown one. A receipt moves to a status only when its rank is higher.
func (s Status) Rank() int {
	switch s {
	case StatusAccepted:
		return 1
	case StatusSent:
		return 2
	case StatusDelivered, StatusUndelivered, StatusBounced, StatusFailed:
		return 3
	}
	return 0
}

// Valid reports whether s is one of the statuses above.
func (s Status) Valid() bool { return s.Rank() > 0 }

// Final reports whether s is a final answer.
func (s Status) Final() bool { return s.Rank() == 3 }

// Failed reports whether s is a final answer that the message did not
// arrive: what UndeliveredRate counts against a provider.
func (s Status) Failed() bool {
	return s == StatusUndelivered || s == StatusBounced || s == StatusFailed
}

// Receipt is the latest status of one provider message.
type Receipt struct {
	// NotificationID is empty when a status arrived before the worker
	// recorded the acceptance (the provider's callback raced the answer to
	// the send); Accepted fills it in later and keeps the status.
	NotificationID    string
	Channel           notification.Channel
	Provider          string // "twilio", "smtp", "fcm"
	ProviderMessageID string
	Status            Status
	// Code is the provider's code for the status ("30005" for Twilio, a DSN
	// status "5.1.1" for email), "" when none.
	Code string
	// Detail is what Code means, from this package's tables; it is derived
	// on every read and never stored.
	Detail string
	// At is when the receipt reached Status, on the recording clock.
	At time.Time
}

// Store keeps receipts. Implementations are safe for concurrent use.
//
// Errors are classified with package failure: ErrInvalid (an empty id, an
// unknown status) is permanent, everything else retryable.
type Store interface {
	// Accepted records that the provider accepted r.ProviderMessageID for
	// r.NotificationID, on r.Channel through r.Provider, at r.At. The worker
	// calls it after the send, with the id from channels.Receipt. A status
	// already recorded for that provider message (a callback that came
	// first) is kept. It returns the receipt as stored.
	Accepted(ctx context.Context, r Receipt) (Receipt, error)
	// Record moves the provider message to status with the provider's
	// code, when status ranks above the current one (Status.Rank), and
	// returns the receipt with whether it changed. An unknown provider
	// message id is recorded without a notification id (see Receipt).
	Record(ctx context.Context, providerMessageID string, status Status, code string, at time.Time) (Receipt, bool, error)
	// Get returns the receipt of the notification's latest accepted
	// provider message, and whether there is one.
	Get(ctx context.Context, notificationID string) (Receipt, bool, error)
	// Lookup returns the receipt of a provider message, and whether there
	// is one.
	Lookup(ctx context.Context, providerMessageID string) (Receipt, bool, error)
}

// DefaultTTL is how long receipts are kept: the idempotency keys' retention.
const DefaultTTL = 7 * 24 * time.Hour

// ErrInvalid is returned for an empty id or an unknown status.
var ErrInvalid = errors.New("receipts: invalid argument")

func invalid(format string, args ...any) error {
	return failure.Perm(failure.ReasonInvalid, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
}

// describe fills in r.Detail from the provider's code table.
func describe(r Receipt) Receipt {
	r.Detail = ""
	if r.Code != "" && r.Provider == ProviderTwilio {
		r.Detail, _ = DescribeTwilioCode(r.Code)
	}
	return r
}
