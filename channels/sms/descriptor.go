package sms

import (
	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
)

// Descriptor is the SMS channel as herald knows it (channels.Descriptor).
var Descriptor = &channels.Descriptor{
	Spec: notification.Spec{
		Name:  notification.SMS,
		Check: address.Phone,
		Mask:  address.MaskPhone,
		// invalid_address is Twilio 21211/21614 (not a valid or not a
		// mobile number), unsubscribed is 21610 (the member texted STOP).
		SuppressOn: []string{"invalid_address", "unsubscribed"},
	},
	Doc:          "SMS through Twilio's Messages API (twilio-go), held to a segment budget per rule.",
	Provider:     "twilio",
	AddressField: "phone",
	Addresses: func(p *events.Person) []string {
		if p.Phone == "" {
			return nil
		}
		return []string{p.Phone}
	},
	Parts: []channels.Part{{File: "txt", Field: channels.FieldText}},
	New: func(b channels.Build) (channels.Sender, error) {
		c := b.Config
		return New(Config{
			AccountSID: c.TwilioAccountSID, AuthToken: c.TwilioAuthToken, From: c.TwilioFrom,
			MessagingServiceSID: c.TwilioMessagingServiceSID, APIURL: c.TwilioAPIURL,
			ValidityPeriod: c.SMSValidityPeriod, Timeout: c.SendTimeout, Policy: c.SMSPolicy(),
		})
	},
	Rate: func(c *config.Config) int { return c.SMSRate },
}
