package sms

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/failover"
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
	Settings: append(settings, config.Setting{
		Name: StatusCallbackVar, Group: "SMS", Kind: "url", Accepts: "absolute http(s) URL ending in " + receiptsPath,
		Doc: "Public URL Twilio posts each SMS's delivery status to (its StatusCallback), which herald serves on the sms role's HTTP port (`HERALD_HTTP_ADDR`) at `" + receiptsPath + "`: " +
			"the status (delivered, undelivered with Twilio's error code) shows in `herald trace` and `herald_delivery_receipts_total`, " +
			"and codes that say the number is dead or unsubscribed suppress it. Callbacks are checked against `X-Twilio-Signature`, " +
			"so it must be exactly the URL Twilio is given. Unset: no delivery receipts for SMS.",
		Check: checkCallbackURL,
	}),
	// Several messaging services in HERALD_TWILIO_MESSAGING_SERVICE_SID
	// fail over to each other (channels/failover).
	New: func(b channels.Build) (channels.Sender, error) {
		c := b.Config
		build := func(service string) (channels.Sender, error) {
			return New(Config{
				AccountSID: c.TwilioAccountSID, AuthToken: c.TwilioAuthToken, From: c.TwilioFrom,
				MessagingServiceSID: service, APIURL: c.TwilioAPIURL,
				ValidityPeriod: c.SMSValidityPeriod, Timeout: c.SendTimeout, Policy: c.SMSPolicy(),
				StatusCallback: c.Value(StatusCallbackVar),
			})
		}
		if c.TwilioMessagingServiceSID == "" {
			return build("")
		}
		return failover.FromList(notification.SMS, c, c.TwilioMessagingServiceSID, build)
	},
	Rate:   func(c *config.Config) int { return c.SMSRate },
	Deploy: channels.Deploy{Secret: &channels.DeploySecret{Name: "twilio", Key: "auth-token", Env: "HERALD_TWILIO_AUTH_TOKEN_FILE"}},
	Dev:    dev,
}

// StatusCallbackVar is the variable of the URL Twilio posts delivery
// status callbacks to (package receipts serves it).
const StatusCallbackVar = "HERALD_TWILIO_STATUS_CALLBACK_URL"

// receiptsPath is receipts.TwilioPath, which this package cannot import
// (receipts' tests import the channel table).
const receiptsPath = "/v1/receipts/twilio"

func checkCallbackURL(s string) error {
	if err := checkURL(s, true); err != nil {
		return err
	}
	if u, _ := url.Parse(s); !strings.HasSuffix(u.Path, receiptsPath) {
		return fmt.Errorf("%q does not end in %s, the path herald serves", s, receiptsPath)
	}
	return nil
}
