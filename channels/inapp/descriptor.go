// Package inapp is the in-app channel: a notification addressed to a
// person lands in their feed (package feed) exactly once, and the gateway
// (package gateway) shows it at once to every session the person has open.
//
// The channel's "provider" is the feed store itself — Redis in production,
// memory in herald dev — so a send is one script on Redis: append unless
// the feed has the notification, and announce it to every gateway pod.
package inapp

import (
	"context"
	"errors"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/notification"
)

// Name is the channel's name.
const Name notification.Channel = "inapp"

// The channel's variables.
const (
	MaxItemsVar = "HERALD_INAPP_FEED_MAX_ITEMS"
	MaxAgeVar   = "HERALD_INAPP_FEED_MAX_AGE"
)

// Descriptor is the in-app channel as herald knows it (channels.Descriptor).
var Descriptor = &channels.Descriptor{
	Spec: notification.Spec{
		Name: Name,
		// An address is the person's id, the JWT sub of their sessions.
		// Ids are pseudonymous keys, not contact details, so logs show them.
		Check: func(to string) error {
			if err := feed.CheckPerson(to); err != nil {
				return failure.Perm(failure.ReasonInvalidAddress, err)
			}
			return nil
		},
		Mask: func(to string) string { return to },
	},
	Doc:          "A person's in-app feed, kept in Redis and shown live by the gateway role to every session they have open (Server-Sent Events or WebSocket).",
	Provider:     "feed",
	AddressField: "id",
	Addresses: func(p *events.Person) []string {
		if p.ID == "" {
			return nil
		}
		return []string{p.ID}
	},
	Parts: []channels.Part{
		{File: "title.txt", Field: channels.FieldTitle, OneLine: true, Limit: 120, Name: "title"},
		{File: "body.txt", Field: channels.FieldText, Limit: 1000, Name: "body"},
	},
	Settings: []config.Setting{
		{
			Name: MaxItemsVar, Default: "200", Kind: "integer", Accepts: "1..10000", Check: config.CheckInt(1, 10000),
			Doc: "Most items one person's feed keeps; the oldest go first (with their read marks, adjusting the unread count).",
		},
		{
			Name: MaxAgeVar, Default: "720h", Kind: "duration", Accepts: "1h..8760h", Check: config.CheckDuration(time.Hour, 365*24*time.Hour),
			Doc: "How long an item stays in a feed, and how long a feed remembers a notification id: a replay of a notification " +
				"older than this is refused rather than shown again. An idle feed's keys expire this long after its last item.",
		},
	},
	New: func(b channels.Build) (channels.Sender, error) {
		if b.Feed == nil {
			return nil, errors.New("no feed store (the inapp role needs Redis: HERALD_REDIS_URL)")
		}
		return &Sender{Feed: b.Feed, Now: time.Now}, nil
	},
	Deploy: channels.Deploy{LagPerPod: 500},
	Dev:    dev,
}

// Limits are the feed bounds c configures.
func Limits(c *config.Config) feed.Limits {
	return feed.Limits{MaxItems: c.Int(MaxItemsVar), MaxAge: c.Duration(MaxAgeVar)}
}

// Sender appends to feeds.
type Sender struct {
	Feed feed.Store
	Now  func() time.Time
	// Sent, when set, is told of every item the feed holds after a send,
	// and whether this send added it (false: a replay, or a retry of an
	// append whose answer was lost): herald dev's outbox.
	Sent func(person string, it feed.Item, added bool)
}

// Send implements channels.Sender. A notification the feed has already is
// accepted again, at the position it has: the send that added it may have
// crashed before it was recorded.
func (s *Sender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	it := feed.Item{
		ID: m.NotificationID, EventID: m.EventID, EventType: m.EventType,
		Title: m.Title, Body: m.Text, Data: m.Data,
	}
	a, err := s.Feed.Append(ctx, m.To, it, s.Now())
	switch {
	case errors.Is(err, feed.ErrInvalid):
		return channels.Receipt{}, failure.Perm(failure.ReasonRejected, err)
	case errors.Is(err, context.DeadlineExceeded):
		return channels.Receipt{}, failure.Retry(failure.ReasonTimeout, err)
	case err != nil:
		return channels.Receipt{}, failure.Retry(failure.ReasonUnavailable, err)
	}
	if s.Sent != nil {
		it.Pos = a.Pos
		s.Sent(m.To, it, a.Added)
	}
	return channels.Receipt{ProviderMessageID: a.Pos}, nil
}

// Close implements channels.Sender.
func (s *Sender) Close() error { return nil }
