package config

import (
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	names := Names()
	for _, want := range []string{"HERALD_KAFKA_BROKERS", "HERALD_REDIS_URL", "HERALD_REDIS_URL_FILE", "HERALD_SMTP_PASSWORD_FILE", "HERALD_FCM_CREDENTIALS_FILE"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %s", want)
		}
	}
	// The FCM credentials are a file already: no _FILE form of them.
	if slices.Contains(names, "HERALD_FCM_CREDENTIALS_FILE_FILE") || slices.Contains(names, "HERALD_KAFKA_BROKERS_FILE") {
		t.Errorf("Names() lists a _FILE form of a non-secret: %v", names)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("%s listed twice", n)
		}
		seen[n] = true
	}
}
