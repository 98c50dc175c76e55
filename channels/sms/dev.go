package sms

import (
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/twiliofake"
)

// dev runs a Twilio fake for herald dev and the fleet tests; with a
// callback base it posts signed status callbacks for every message, which
// herald dev serves (HERALD_TWILIO_STATUS_CALLBACK_URL).
func dev(o channels.DevOptions) (*channels.DevFake, error) {
	const sid, token = "AC00000000000000000000000000000000", "devauthtoken0000"
	fake := twiliofake.New(o.Outbox, twiliofake.Options{AccountSID: sid, AuthToken: token, StatusCallbacks: o.CallbackBase != ""})
	url, stop, err := sinks.ServeLocal(fake)
	if err != nil {
		return nil, err
	}
	c := o.Config
	c.TwilioAccountSID, c.TwilioAuthToken, c.TwilioFrom, c.TwilioAPIURL = sid, token, "+15005550006", url
	if o.CallbackBase != "" {
		c.SetValue(StatusCallbackVar, o.CallbackBase+receiptsPath)
	}
	return &channels.DevFake{Fake: fake, Close: stop}, nil
}
