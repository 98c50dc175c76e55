package sms

import (
	"fmt"
	"time"

	"github.com/gymhq/herald/config"
)

// settings are the SMS channel's Twilio variables, declared here once
// (channels.Descriptor.Settings). The SMS destination policy
// (HERALD_SMS_ALLOWED_COUNTRIES, HERALD_SMS_DENIED_PREFIXES) stays in the
// configuration registry: the dispatcher reads it too.
var settings = []config.Setting{
	{
		Name: "HERALD_TWILIO_ACCOUNT_SID", Group: "SMS", Required: true,
		Doc:  "Twilio account SID: `AC` and 32 hex digits.",
		Bind: config.Text(func(c *config.Config) *string { return &c.TwilioAccountSID }, "AC…", config.TwilioSID("AC")),
	},
	{
		Name: "HERALD_TWILIO_AUTH_TOKEN", Group: "SMS", Secret: true, Required: true,
		Doc:  "Twilio auth token for the account; prefer `HERALD_TWILIO_AUTH_TOKEN_FILE`.",
		Bind: config.Text(func(c *config.Config) *string { return &c.TwilioAuthToken }, "", nil),
	},
	{
		Name: "HERALD_TWILIO_FROM", Group: "SMS", RequiredDoc: "sms, all (or the messaging service)",
		Doc: "Sender the account owns: an E.164 number, a 5–6 digit short code, or an alphanumeric sender ID (up to 11 letters, digits and spaces). " +
			"This or `HERALD_TWILIO_MESSAGING_SERVICE_SID` is required.",
		Bind: config.Text(func(c *config.Config) *string { return &c.TwilioFrom }, "", config.TwilioSender),
	},
	{
		Name: "HERALD_TWILIO_MESSAGING_SERVICE_SID", Group: "SMS", RequiredDoc: "sms, all (or the sender)",
		Doc: "Twilio Messaging Service (`MG` and 32 hex digits), which picks the sender from its pool and handles opt-outs and scaling across numbers. " +
			"This or `HERALD_TWILIO_FROM` is required. " +
			"A comma-separated list is several services of the account, each with an optional `*weight`, failing over to each other as `HERALD_SMTP_ADDR`'s relays do.",
		Bind: config.Text(func(c *config.Config) *string { return &c.TwilioMessagingServiceSID }, "MG…[*weight],…", config.WeightedList(config.TwilioSID("MG"))),
		Rule: func(c *config.Config) error {
			if c.TwilioFrom == "" && c.TwilioMessagingServiceSID == "" {
				return config.RequiredUnless("HERALD_TWILIO_FROM")
			}
			return nil
		},
	},
	{
		Name: "HERALD_TWILIO_API_URL", Group: "SMS", Default: "https://api.twilio.com",
		Doc:  "Base URL of the Twilio REST API; point it at a fake for tests and staging.",
		Bind: config.Text(func(c *config.Config) *string { return &c.TwilioAPIURL }, "http(s) URL", config.HTTPURL),
	},
	{
		Name: "HERALD_SMS_VALIDITY_PERIOD", Group: "SMS",
		Doc: "Twilio's `ValidityPeriod`, in whole seconds: a message still queued at Twilio after this long is dropped instead of delivered late, " +
			"since \"your class starts in an hour\" is wrong three hours later. Unset leaves Twilio's default.",
		Bind: config.Duration(func(c *config.Config) *time.Duration { return &c.SMSValidityPeriod }, time.Second, 10*time.Hour, true),
		Rule: func(c *config.Config) error {
			if c.SMSValidityPeriod%time.Second != 0 {
				return fmt.Errorf("%s is not a whole number of seconds", config.FmtDuration(c.SMSValidityPeriod))
			}
			return nil
		},
	},
}
