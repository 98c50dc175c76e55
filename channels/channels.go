// Package channels is the contract between the channel workers and the
// providers that deliver messages: a rendered Message goes in, a Receipt or a
// classified error comes out.
//
// A channel implementation (channels/email, channels/sms, channels/push)
// knows its provider and this package, and nothing of Kafka, Redis or
// templates. Every error it returns is classified with package failure at the
// place it happens: a provider answer decides retryable or permanent there,
// not in the worker.
package channels

import (
	"context"

	"github.com/gymhq/herald/notification"
)

// Attachment is a file sent with an email (for example an .ics invite).
type Attachment struct {
	Filename    string
	ContentType string // e.g. "text/calendar; method=REQUEST"
	Data        []byte
}

// Message is a notification rendered for its channel and ready to send.
//
// Email uses Subject, Text, HTML and Attachments; SMS uses Text; push uses
// Title, Text and Data. To is the address on that channel: an email address,
// an E.164 number or a push token.
type Message struct {
	NotificationID string
	Channel        notification.Channel
	To             string
	ToName         string
	Locale         string
	Priority       notification.Priority

	// EventID is the booking event the notification was made from, for
	// logs, traces and herald dev's outbox; providers are not sent it.
	EventID string
	// EventType and EventTime (RFC 3339, empty when the event has none)
	// are the event's; a channel whose receivers subscribe to types
	// (webhook) sends them.
	EventType string
	EventTime string

	// RecipientID is the person the message is for (their id in the
	// event) and Category its rule's category (templates/categories.yaml).
	// Unsubscribable says the person may switch that category off
	// entirely (it is not required): the email channel then gives the
	// message a one-click unsubscribe link (List-Unsubscribe) signed for
	// RecipientID and Category. A message without all three gets none.
	RecipientID    string
	Category       string
	Unsubscribable bool

	Subject     string
	Text        string
	HTML        string
	Attachments []Attachment

	Title string
	Data  map[string]string

	// Shortened lists what the renderer cut with an ellipsis to keep the
	// message within its limits: data keys for an SMS's segment budget, and
	// "subject", "recipient_name", "title" or "body" for the send-time
	// limits of headers and push; empty when nothing was cut. Senders
	// ignore it; the worker counts it.
	Shortened []string
}

// Receipt is what a provider said when it accepted a message.
type Receipt struct {
	// ProviderMessageID is the provider's id for the message (SMTP
	// Message-ID, Twilio SID, FCM message name).
	ProviderMessageID string
	// Provider names the provider that accepted it, when a channel has
	// several (package failover); empty means the channel's only one.
	Provider string
}

// Sender delivers messages on one channel.
//
// Send must be safe for concurrent use. It returns a nil error only when the
// provider has accepted the message. Errors are classified with package
// failure; an unclassified error is treated as retryable. Send must honour
// ctx's deadline. Close releases pooled connections; no Send may be called
// after it.
type Sender interface {
	Send(ctx context.Context, m *Message) (Receipt, error)
	Close() error
}
