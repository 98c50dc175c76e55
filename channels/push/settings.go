package push

import "github.com/gymhq/herald/config"

// settings are the push channel's variables, declared here once
// (channels.Descriptor.Settings).
var settings = []config.Setting{
	{
		Name: "HERALD_FCM_PROJECT_ID", Group: "Push", Required: true,
		Doc:  "Firebase project that push messages are sent through.",
		Bind: config.Text(func(c *config.Config) *string { return &c.FCMProjectID }, "a Google Cloud project ID", CheckProjectID),
	},
	{
		Name: "HERALD_FCM_CREDENTIALS_FILE", Group: "Push", Required: true,
		Doc: "Path to the Google service-account key (JSON) used to get OAuth2 tokens for FCM; its `token_uri` is honoured. " +
			"Checked at start: it must be readable JSON of type `service_account` with `client_email` and `private_key`. " +
			"Being a file already, it has no `_FILE` form; mount it from a Secret.",
		Bind: config.Text(func(c *config.Config) *string { return &c.FCMCredentialsFile }, "path to a service-account JSON file", config.ServiceAccountFile),
	},
	{
		Name: "HERALD_FCM_ENDPOINT", Group: "Push", Default: "https://fcm.googleapis.com",
		Doc:  "Base URL of the FCM HTTP v1 API; point it at a fake for tests and staging.",
		Bind: config.Text(func(c *config.Config) *string { return &c.FCMEndpoint }, "http(s) URL", config.HTTPURL),
	},
}
