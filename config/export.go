package config

import "time"

// Binding ties a declared setting to its Config field (Setting.Bind): the
// shipped channels' settings, whose Config fields the tree reads. A
// setting without one keeps its raw value, read with Value.
type Binding struct{ b binding }

// Text binds a string field; check, if not nil, checks a non-empty value.
func Text(field func(*Config) *string, accepts string, check func(string) error) *Binding {
	return &Binding{text(field, accepts, check)}
}

// Integer binds an int field within min..max.
func Integer(field func(*Config) *int, min, max int) *Binding {
	return &Binding{integer(field, min, max)}
}

// Duration binds a time.Duration field within min..max; optional makes
// zero "not set".
func Duration(field func(*Config) *time.Duration, min, max time.Duration, optional bool) *Binding {
	return &Binding{duration(field, min, max, optional)}
}

// Enum binds a string-typed field to one of values.
func Enum[T ~string](field func(*Config) *T, values ...T) *Binding {
	return &Binding{enum(field, values...)}
}

// The value checks the shipped channels' settings use.
var (
	// HostPort checks host:port, with a host when needHost.
	HostPort = hostPort
	// WeightedList checks a provider list (ParseWeighted) whose every
	// value passes each.
	WeightedList = weightedList
	// TwilioSID checks a Twilio SID with prefix p ("AC", "MG").
	TwilioSID = twilioSID
	// TwilioSender checks a Twilio From.
	TwilioSender = twilioSender
	// HTTPURL checks an absolute http(s) URL.
	HTTPURL = httpURL
	// EmailAddress checks an RFC 5322 address, display name allowed.
	EmailAddress = emailAddress
	// ServiceAccountFile checks a readable Google service-account JSON.
	ServiceAccountFile = serviceAccountFile
)

// RequiredUnless is what a Setting's Rule returns when the setting is
// required unless the variable other is set, and neither is: it is
// reported with the other missing variables, naming both.
func RequiredUnless(other string) error { return requiredUnless(other) }

// FmtDuration formats d as the docs and errors do.
func FmtDuration(d time.Duration) string { return fmtDuration(d) }
