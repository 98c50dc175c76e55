package webhook

import (
	"encoding/json"
	"errors"
	"io/fs"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// Name is the channel's name.
const Name notification.Channel = "webhook"

// The channel's variables.
const (
	AllowPrivateVar = "HERALD_WEBHOOK_ALLOW_PRIVATE_NETWORKS"
	TimeoutVar      = "HERALD_WEBHOOK_TIMEOUT"
)

// Descriptor is the webhook channel as herald knows it (channels.Descriptor).
var Descriptor = &channels.Descriptor{
	Spec: notification.Spec{
		Name: Name,
		// An address is a subscription id from webhooks.yaml; ids are
		// configuration, not personal data, so logs show them as they are.
		Check: func(to string) error {
			if !idRE.MatchString(to) {
				return failure.Perm(failure.ReasonInvalidAddress, errors.New("not a webhook subscription id"))
			}
			return nil
		},
		Mask:       func(to string) string { return to },
		SuppressOn: []string{string(ReasonEndpointGone)},
	},
	Doc:          "Signed HTTP POSTs (Standard Webhooks) to the endpoints subscribed to an event type in the template tree's webhooks.yaml.",
	Provider:     "http",
	AddressField: "webhooks.yaml subscriptions",
	Subscribers: func(files any, eventType string) []string {
		s, _ := files.(*Subscriptions)
		return s.For(eventType)
	},
	Files: func(fsys fs.FS) (any, error) { return Load(fsys) },
	Parts: []channels.Part{{File: "json", Field: channels.FieldText, Check: jsonObject, Name: "data"}},
	Settings: []config.Setting{
		{
			Name: AllowPrivateVar, Default: "false", Kind: "bool", Accepts: "true or false", Check: config.CheckBool,
			Doc: "Let webhook endpoints resolve to loopback, link-local, private (RFC 1918, fc00::/7) and CGNAT addresses. " +
				"Off, such a destination is refused at dial time — after DNS, so a public name that resolves inward is refused too — " +
				"as a permanent `destination_denied`, and redirects are never followed: a subscription cannot make herald call into its own network. " +
				"Turn it on only for on-premises receivers and tests.",
		},
		{
			Name: TimeoutVar, Default: "10s", Kind: "duration", Accepts: "1s..1m", Check: config.CheckDuration(time.Second, time.Minute),
			Doc: "Deadline for one webhook delivery, the answer included. A receiver slower than this is retried like a 5xx, " +
				"so receivers should answer 2xx at once and work afterwards.",
		},
	},
	New: func(b channels.Build) (channels.Sender, error) {
		return New(Options{
			Subscriptions: func() *Subscriptions {
				s, _ := b.Files().(*Subscriptions)
				return s
			},
			Timeout:              b.Config.Duration(TimeoutVar),
			AllowPrivateNetworks: b.Config.Bool(AllowPrivateVar),
		})
	},
	Dev: dev,
}

// jsonObject is the check of a rendered webhook.<locale>.json: the data
// of the payload, a JSON object.
func jsonObject(s string) error {
	var v map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return errors.New("is not a JSON object (use {{json .field}} to quote values): " + err.Error())
	}
	return nil
}
