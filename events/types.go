// Package events decodes and validates the booking events herald consumes:
// CloudEvents 1.0 JSON envelopes (structured mode) whose data describes
// classes, members and bookings (docs/contracts.md §2).
//
// It never panics on input and never returns a partially valid event: any
// error from Decode is classified poison (package failure) with a reason and
// a message a person can act on, because the caller sends the raw bytes to
// the DLQ with that message. What it checks is what makes the whole event
// unusable; an address (email, phone, push token) is only required to be a
// string here, and its shape is checked per recipient by package address,
// so one bad address costs one message. Display text in the data is cleaned
// (CleanText).
package events

import (
	"encoding/json"
	"time"
)

// The v1 event types herald ships routing and templates for. Other types may
// be added as template folders without Go code; see Decode.
const (
	BookingConfirmed = "gym.booking.confirmed"
	BookingCancelled = "gym.booking.cancelled"
	WaitlistPromoted = "gym.waitlist.promoted"
	ClassReminder    = "gym.class.reminder"
	ClassCancelled   = "gym.class.cancelled"
)

// MaxEventSize bounds an encoded event; larger input is rejected as poison.
// A value of an event appears at most three times in a notification (a
// member's name as member_name, recipient_name and, without a space,
// recipient_first_name), so three times this, plus the notification's own
// fields, stays under notification.MaxEncodedSize; and an event within it
// is dead-lettered whole (dlq.MaxValueSize). See docs/resilience.md, "Size
// limits".
const MaxEventSize = 300_000

// MaxIDBytes bounds an event's id and its people's and class's ids. An id
// goes into every notification of the event, whole, and into places with
// small limits of their own: push data (4 KB at FCM, never cut, since an
// id cut is another id) and in-app feed items (16 KB). A longer one is
// refused at decode, so that none of the event's notifications fails later.
const MaxIDBytes = 256

// Event is a decoded, validated booking event.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	Subject         string    `json:"subject,omitempty"`
	DataContentType string    `json:"datacontenttype,omitempty"`

	// Data is the event's data object, decoded generically (JSON objects as
	// map[string]any, arrays as []any, numbers as json.Number). Routing and
	// templates read it through People and the flattening in package
	// templates, so a new event type needs no Go code.
	Data map[string]any `json:"-"`
	// RawData is the undecoded data member.
	RawData json.RawMessage `json:"data"`
}

// Person is a member, attendee or instructor.
type Person struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Email       string      `json:"email,omitempty"`
	Phone       string      `json:"phone,omitempty"`       // E.164, checked per recipient (package address)
	Locale      string      `json:"locale,omitempty"`      // BCP 47
	TimeZone    string      `json:"time_zone,omitempty"`   // IANA
	PushTokens  []string    `json:"push_tokens,omitempty"` // FCM registration tokens, as given
	Preferences Preferences `json:"preferences,omitempty"`
}

// Preferences are a person's channel opt-ins, by channel name ("email",
// "sms", …): false turns the channel off, and an absent channel is on. The
// names are not checked against the channels herald has, so the booking
// service can send a preference for a channel before herald gains it.
type Preferences map[string]bool

// Allows reports whether the person accepts messages on the named channel.
// Absent preferences mean all on.
func (p *Person) Allows(channel string) bool {
	v, ok := p.Preferences[channel]
	return !ok || v
}

// Class is a scheduled class.
type Class struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	StartsAt   time.Time `json:"starts_at"`
	EndsAt     time.Time `json:"ends_at"`
	TimeZone   string    `json:"time_zone"`
	Location   string    `json:"location"`
	Capacity   int       `json:"capacity"`
	Booked     int       `json:"booked"`
	Instructor *Person   `json:"instructor,omitempty"`
}
