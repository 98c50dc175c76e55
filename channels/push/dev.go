package push

import (
	"os"
	"path/filepath"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/fcmfake"
)

// dev runs an FCM fake (with its own OAuth token endpoint and a service
// account it trusts) for herald dev and the fleet tests.
func dev(o channels.DevOptions) (*channels.DevFake, error) {
	fake := fcmfake.New(o.Outbox, fcmfake.Options{ProjectID: "herald-dev"})
	url, stop, err := sinks.ServeLocal(fake)
	if err != nil {
		return nil, err
	}
	creds, err := fcmfake.ServiceAccountJSON(url + "/token")
	if err == nil {
		err = fake.TrustServiceAccount(creds)
	}
	file := filepath.Join(o.Dir, "fcm-service-account.json")
	if err == nil {
		err = os.WriteFile(file, creds, 0o600)
	}
	if err != nil {
		stop()
		return nil, err
	}
	c := o.Config
	c.FCMProjectID, c.FCMCredentialsFile, c.FCMEndpoint = "herald-dev", file, url
	return &channels.DevFake{Fake: fake, Close: stop}, nil
}
