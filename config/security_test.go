package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/internal/testpki"
)

func TestSecurityVariables(t *testing.T) {
	pki := testpki.New(t, "kafka.test")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := env{"HERALD_KAFKA_BROKERS": "k:9092", "HERALD_REDIS_URL": "redis://r:6379/0"}
	ok := []struct {
		name  string
		env   env
		check func(*config.Config) bool
	}{
		{"defaults are plaintext", base, func(c *config.Config) bool {
			return c.KafkaSASLMechanism == config.KafkaSASLNone && c.KafkaTLS == config.Off
		}},
		{"SCRAM over TLS with every file", base.with("HERALD_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "HERALD_KAFKA_SASL_USERNAME", "herald",
			"HERALD_KAFKA_SASL_PASSWORD_FILE", pwFile, "HERALD_KAFKA_TLS", "on", "HERALD_KAFKA_TLS_CA_FILE", pki.CAFile,
			"HERALD_KAFKA_TLS_CERT_FILE", pki.CertFile, "HERALD_KAFKA_TLS_KEY_FILE", pki.KeyFile, "HERALD_KAFKA_TLS_SERVER_NAME", "kafka.test"),
			func(c *config.Config) bool {
				return c.KafkaSASLPassword == "from-a-file" && c.KafkaTLSServerName == "kafka.test"
			}},
		{"Redis ACL user and TLS", base.with("HERALD_REDIS_URL", "rediss://r:6380/0", "HERALD_REDIS_USERNAME", "herald",
			"HERALD_REDIS_PASSWORD_FILE", pwFile, "HERALD_REDIS_TLS_CA_FILE", pki.CAFile,
			"HERALD_REDIS_TLS_CERT_FILE", pki.CertFile, "HERALD_REDIS_TLS_KEY_FILE", pki.KeyFile),
			func(c *config.Config) bool { return c.RedisPassword == "from-a-file" && c.RedisUsername == "herald" }},
	}
	for _, tc := range ok {
		c, err := config.Load([]string{"--role", "email", "--smtp-addr", "s:587", "--email-from", "a@b.c"}, tc.env.get)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !tc.check(c) {
			t.Errorf("%s: %+v", tc.name, c.Security)
		}
		for k, v := range c.Redacted() {
			if strings.Contains(v, "from-a-file") {
				t.Errorf("%s: Redacted shows the secret in %s", tc.name, k)
			}
		}
	}

	bad := []struct {
		env  env
		want string
	}{
		{base.with("HERALD_KAFKA_SASL_MECHANISM", "GSSAPI"), "HERALD_KAFKA_SASL_MECHANISM"},
		{base.with("HERALD_KAFKA_SASL_MECHANISM", "PLAIN", "HERALD_KAFKA_SASL_PASSWORD", "p"), "HERALD_KAFKA_SASL_USERNAME: required with"},
		{base.with("HERALD_KAFKA_SASL_MECHANISM", "PLAIN", "HERALD_KAFKA_SASL_USERNAME", "u"), "HERALD_KAFKA_SASL_PASSWORD: required with"},
		{base.with("HERALD_KAFKA_SASL_PASSWORD", "p"), "HERALD_KAFKA_SASL_PASSWORD: is set but HERALD_KAFKA_SASL_MECHANISM is none"},
		{base.with("HERALD_KAFKA_TLS", "yes"), "HERALD_KAFKA_TLS"},
		{base.with("HERALD_KAFKA_TLS_CA_FILE", pki.CAFile), "HERALD_KAFKA_TLS_CA_FILE: is set but HERALD_KAFKA_TLS is off"},
		{base.with("HERALD_KAFKA_TLS", "on", "HERALD_KAFKA_TLS_CA_FILE", pki.KeyFile), "HERALD_KAFKA_TLS_CA_FILE"},
		{base.with("HERALD_KAFKA_TLS", "on", "HERALD_KAFKA_TLS_CA_FILE", filepath.Join(dir, "missing")), "HERALD_KAFKA_TLS_CA_FILE"},
		{base.with("HERALD_KAFKA_TLS", "on", "HERALD_KAFKA_TLS_CERT_FILE", pki.CertFile), "HERALD_KAFKA_TLS_KEY_FILE: must be set together"},
		{base.with("HERALD_KAFKA_TLS", "on", "HERALD_KAFKA_TLS_CERT_FILE", pki.CertFile, "HERALD_KAFKA_TLS_KEY_FILE", pki.CAFile), "HERALD_KAFKA_TLS_KEY_FILE: does not load"},
		{base.with("HERALD_KAFKA_TLS_SERVER_NAME", "kafka.test"), "HERALD_KAFKA_TLS_SERVER_NAME"},
		{base.with("HERALD_REDIS_URL", "redis://:inurl@r:6379/0", "HERALD_REDIS_PASSWORD", "p"), "HERALD_REDIS_PASSWORD: HERALD_REDIS_URL carries a password too"},
		{base.with("HERALD_REDIS_TLS_CA_FILE", pki.CAFile), "HERALD_REDIS_TLS_CA_FILE: is set but HERALD_REDIS_URL is not a rediss://"},
		{base.with("HERALD_REDIS_PASSWORD", "p", "HERALD_REDIS_PASSWORD_FILE", pwFile), "HERALD_REDIS_PASSWORD"},
	}
	for _, tc := range bad {
		_, err := config.Load([]string{"--role", "email", "--smtp-addr", "s:587", "--email-from", "a@b.c"}, tc.env.get)
		var ce *config.Error
		if err == nil || !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line starting %q", tc.env, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "inurl") || strings.Contains(err.Error(), "from-a-file")) {
			t.Errorf("error shows a secret: %v", err)
		}
	}
}
