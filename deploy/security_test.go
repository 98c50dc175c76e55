package deploy

import (
	"testing"

	"github.com/gymhq/herald/config"
)

// TestSecureOverlay: with components/kafka-sasl-tls and
// components/redis-tls-acl (overlays/prod-secure), every role logs in to
// Kafka over TLS with the password and CA from Secret herald-kafka, and
// the roles that use Redis (not the dispatcher) reach it over TLS as an
// ACL user with the password and CA from Secret herald-redis. TestConfiguration
// already checks every overlay loads; this checks the security settings
// took effect, and come from where docs/operations.md says.
func TestSecureOverlay(t *testing.T) {
	f := build(t, "prod-secure")
	secretValues := operatorSecrets(t)
	wantFiles := map[string]string{
		"HERALD_KAFKA_SASL_PASSWORD_FILE": "herald-kafka/password",
		"HERALD_KAFKA_TLS_CA_FILE":        "herald-kafka/ca.crt",
		"HERALD_REDIS_PASSWORD_FILE":      "herald-redis/password",
		"HERALD_REDIS_TLS_CA_FILE":        "herald-redis/ca.crt",
	}
	for _, role := range roles() {
		d := f.deployment(t, role)
		ps := d.Spec.Template.Spec
		c := ps.Containers[0]
		usesRedis := true // every role: the dispatcher's scheduler and preferences too
		got := map[string]string{}
		for _, e := range c.Env {
			if want, ok := wantFiles[e.Name]; ok {
				s, k := mountedSecret(ps, c, e.Value)
				got[e.Name] = s + "/" + k
				if s+"/"+k != want {
					t.Errorf("%s: %s=%s reads %s/%s, want %s", d.Name, e.Name, e.Value, s, k, want)
				}
			}
		}
		for name := range wantFiles {
			isRedis := name == "HERALD_REDIS_PASSWORD_FILE" || name == "HERALD_REDIS_TLS_CA_FILE"
			if _, set := got[name]; set != (!isRedis || usesRedis) {
				t.Errorf("%s: %s set %v; want it set only in the roles that connect to that service", d.Name, name, set)
			}
		}
		cfg, err := podConfig(t, f, d, secretValues)
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		if cfg.KafkaSASLMechanism == config.KafkaSASLNone || cfg.KafkaSASLUsername == "" || cfg.KafkaSASLPassword != "kafka-password" {
			t.Errorf("%s: Kafka SASL %s user %q: not logging in with herald-kafka's password", d.Name, cfg.KafkaSASLMechanism, cfg.KafkaSASLUsername)
		}
		if cfg.KafkaTLS != config.On || cfg.KafkaTLSCAFile == "" {
			t.Errorf("%s: Kafka TLS %s, CA %q", d.Name, cfg.KafkaTLS, cfg.KafkaTLSCAFile)
		}
		if usesRedis && (cfg.RedisUsername == "" || cfg.RedisPassword != "redis-password" || cfg.RedisTLSCAFile == "") {
			t.Errorf("%s: Redis user %q, password from herald-redis %v, CA %q", d.Name, cfg.RedisUsername, cfg.RedisPassword == "redis-password", cfg.RedisTLSCAFile)
		}
	}
}
