// Package sinks holds in-process stand-ins for herald's providers — an SMTP
// server, a Twilio Messages API and an FCM HTTP v1 API — that speak the real
// wire protocols and error shapes. `herald dev` uses them so a newcomer can see
// what was "sent", and the tests use them so that the real client libraries
// are exercised end to end. Every sink records what it accepted in an Outbox.
package sinks

import (
	"cmp"
	"context"
	"sync"
	"time"
)

// Delivery is one message a sink accepted.
type Delivery struct {
	Channel    string // "email", "sms" or "push"
	To         string // address, E.164 number or push token
	From       string
	Subject    string // email
	Title      string // push
	Text       string // email text part, SMS body, push body
	HTML       string // email HTML part
	ProviderID string // the id the sink answered with (Twilio SID, FCM name, SMTP queue id)
	MessageID  string // email Message-ID header
	// Attachments lists attachment file names (email).
	Attachments []string
	// Meta carries channel-specific extras (e.g. push data, SMS validity).
	Meta map[string]string
	At   time.Time

	// NotificationID and EventID say which notification, of which event,
	// this was. A sink fills what the wire carries (an email's
	// X-Herald-Notification-Id header); the rest comes from Identify, once
	// the sender has the provider's answer.
	NotificationID string
	EventID        string
}

// Outbox records deliveries. It is safe for concurrent use.
type Outbox struct {
	mu      sync.Mutex
	keep    int
	total   int
	items   []Delivery
	changed chan struct{}
}

// NewOutbox returns an Outbox that keeps the most recent keep deliveries
// (0 keeps all of them). Len always counts every delivery.
func NewOutbox(keep int) *Outbox {
	return &Outbox{keep: keep, changed: make(chan struct{})}
}

// Add records d.
func (o *Outbox) Add(d Delivery) {
	if d.At.IsZero() {
		d.At = time.Now()
	}
	o.mu.Lock()
	o.total++
	o.items = append(o.items, d)
	if o.keep > 0 && len(o.items) > o.keep {
		n := copy(o.items, o.items[len(o.items)-o.keep:])
		clear(o.items[n:])
		o.items = o.items[:n]
	}
	close(o.changed)
	o.changed = make(chan struct{})
	o.mu.Unlock()
}

// Identify records which notification and event the delivery on channel
// that the provider knows as providerID was: the newest kept delivery of
// that channel whose ProviderID or MessageID is providerID, or whose
// NotificationID is notificationID. Fields already set are kept. It
// reports whether a delivery matched (none does once it has been evicted,
// or when the provider accepted a message no sink recorded).
func (o *Outbox) Identify(channel, providerID, notificationID, eventID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.items) - 1; i >= 0; i-- {
		d := &o.items[i]
		if d.Channel != channel {
			continue
		}
		if (providerID != "" && (d.ProviderID == providerID || d.MessageID == providerID)) ||
			(notificationID != "" && d.NotificationID == notificationID) {
			d.NotificationID = cmp.Or(d.NotificationID, notificationID)
			d.EventID = cmp.Or(d.EventID, eventID)
			return true
		}
	}
	return false
}

// Find returns the newest kept delivery on channel of the notification id,
// and whether there is one.
func (o *Outbox) Find(channel, notificationID string) (Delivery, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.items) - 1; i >= 0; i-- {
		if d := o.items[i]; d.Channel == channel && d.NotificationID == notificationID {
			return d, true
		}
	}
	return Delivery{}, false
}

// Keep returns how many deliveries the outbox keeps (0: all).
func (o *Outbox) Keep() int { return o.keep }

// All returns a copy of the kept deliveries, oldest first.
func (o *Outbox) All() []Delivery {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Delivery(nil), o.items...)
}

// Len returns how many deliveries were ever added.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.total
}

// Wait blocks until at least n deliveries were added or ctx ends.
func (o *Outbox) Wait(ctx context.Context, n int) error {
	for {
		o.mu.Lock()
		total, ch := o.total, o.changed
		o.mu.Unlock()
		if total >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
