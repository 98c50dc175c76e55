// Package all is herald's registration table: importing it registers every
// channel herald has, in the order lists and docs show them. It is the one
// place a channel is named outside its own folder; cmd/herald imports it,
// and so do the tests of packages that need the channels.
//
// To add a channel: write channels/<name> with a Descriptor
// (channels/descriptor.go says what it holds), add it to the table below,
// and regenerate the docs derived from it (`go test ./config -update`);
// docs/channels.md walks through it.
package all

import (
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/email"
	"github.com/gymhq/herald/channels/inapp"
	"github.com/gymhq/herald/channels/push"
	"github.com/gymhq/herald/channels/sms"
	"github.com/gymhq/herald/channels/webhook"
)

func init() {
	channels.Register(
		email.Descriptor,
		sms.Descriptor,
		push.Descriptor,
		inapp.Descriptor,
		webhook.Descriptor,
	)
}
