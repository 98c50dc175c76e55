package push

import (
	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
)

// Descriptor is the push channel as herald knows it (channels.Descriptor).
var Descriptor = &channels.Descriptor{
	Spec: notification.Spec{
		Name:  notification.Push,
		Check: address.PushToken,
		Mask:  address.MaskToken,
		// token_unregistered is FCM UNREGISTERED (the app was removed),
		// invalid_address an INVALID_ARGUMENT about the token.
		SuppressOn: []string{"invalid_address", "token_unregistered"},
	},
	Doc:          "Push notifications through Firebase Cloud Messaging's HTTP v1 API, one per device token.",
	Provider:     "fcm",
	AddressField: "push_tokens",
	Addresses:    deviceTokens,
	Parts: []channels.Part{
		{File: "title.txt", Field: channels.FieldTitle, OneLine: true, Limit: 65, Name: "title"},
		{File: "body.txt", Field: channels.FieldText, Limit: 240, Name: "body"},
	},
	Settings: settings,
	New: func(b channels.Build) (channels.Sender, error) {
		c := b.Config
		return New(Config{
			ProjectID: c.FCMProjectID, CredentialsFile: c.FCMCredentialsFile,
			Endpoint: c.FCMEndpoint, Timeout: c.SendTimeout,
		})
	},
	Rate:   func(c *config.Config) int { return c.PushRate },
	Deploy: channels.Deploy{Secret: &channels.DeploySecret{Name: "fcm", Key: "service-account.json", Env: "HERALD_FCM_CREDENTIALS_FILE"}, LagPerPod: 200},
	Dev:    dev,
}

// deviceTokens is each distinct non-empty push token of p, in the event's order.
func deviceTokens(p *events.Person) []string {
	switch len(p.PushTokens) {
	case 0:
		return nil
	case 1:
		if p.PushTokens[0] == "" {
			return nil
		}
		return p.PushTokens
	}
	out := make([]string, 0, len(p.PushTokens))
	for _, t := range p.PushTokens {
		if t != "" && !contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
