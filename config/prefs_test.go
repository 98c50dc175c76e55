package config_test

import (
	"testing"
	"time"

	"github.com/gymhq/herald/config"
)

// TestUnsubscribeVariables: the email role needs the unsubscribe secret
// and the public URL together, the gateway the secret alone; the URL is
// https (http only on loopback) and the secret at least 32 bytes.
func TestUnsubscribeVariables(t *testing.T) {
	email := env{
		"HERALD_KAFKA_BROKERS": "kafka:9092", "HERALD_REDIS_URL": "redis://redis:6379",
		"HERALD_SMTP_ADDR": "smtp:587", "HERALD_EMAIL_FROM": "hello@example.com",
	}
	gateway := env{"HERALD_REDIS_URL": "redis://redis:6379", "HERALD_GATEWAY_JWT_SECRET": "0123456789abcdef0123456789abcdef"}
	const secret = "an-unsubscribe-secret-of-32-bytes!"

	c, err := config.Load([]string{"--role", "email"}, email.get)
	if err != nil || c.Gateway.UnsubscribeSecret != "" || c.Gateway.UnsubscribeTTL != 60*24*time.Hour {
		t.Fatalf("links off: %v, %+v", err, c)
	}
	c, err = config.Load([]string{"--role", "email"}, email.with("HERALD_UNSUBSCRIBE_SECRET", secret, "HERALD_GATEWAY_PUBLIC_URL", "https://notify.example.com/herald", "HERALD_UNSUBSCRIBE_TTL", "720h").get)
	if err != nil || c.Gateway.PublicURL != "https://notify.example.com/herald" || c.Gateway.UnsubscribeTTL != 720*time.Hour {
		t.Fatalf("links on: %v, %+v", err, c)
	}
	if _, err := config.Load([]string{"--role", "gateway"}, gateway.with("HERALD_UNSUBSCRIBE_SECRET", secret).get); err != nil {
		t.Fatalf("gateway with the secret alone: %v", err)
	}
	if _, err := config.Load([]string{"--role", "email"}, email.with("HERALD_GATEWAY_PUBLIC_URL", "http://127.0.0.1:8080", "HERALD_UNSUBSCRIBE_SECRET", secret).get); err != nil {
		t.Fatalf("http on loopback (herald dev): %v", err)
	}
	bad := []struct {
		role string
		env  env
		name string
		want string
	}{
		{"email", email.with("HERALD_UNSUBSCRIBE_SECRET", secret), "HERALD_UNSUBSCRIBE_SECRET", "HERALD_GATEWAY_PUBLIC_URL is not"},
		{"email", email.with("HERALD_GATEWAY_PUBLIC_URL", "https://notify.example.com"), "HERALD_UNSUBSCRIBE_SECRET", "is not set"},
		{"email", email.with("HERALD_UNSUBSCRIBE_SECRET", "short", "HERALD_GATEWAY_PUBLIC_URL", "https://notify.example.com"), "HERALD_UNSUBSCRIBE_SECRET", "shorter than 32 bytes"},
		{"gateway", gateway.with("HERALD_UNSUBSCRIBE_SECRET", "short"), "HERALD_UNSUBSCRIBE_SECRET", "shorter than 32 bytes"},
		{"email", email.with("HERALD_GATEWAY_PUBLIC_URL", "http://notify.example.com"), "HERALD_GATEWAY_PUBLIC_URL", "not an https:// URL"},
		{"email", email.with("HERALD_GATEWAY_PUBLIC_URL", "https://notify.example.com/?x=1"), "HERALD_GATEWAY_PUBLIC_URL", "no query"},
		{"email", email.with("HERALD_GATEWAY_PUBLIC_URL", "notify.example.com"), "HERALD_GATEWAY_PUBLIC_URL", "not a URL"},
		{"email", email.with("HERALD_UNSUBSCRIBE_TTL", "1h"), "HERALD_UNSUBSCRIBE_TTL", "out of range"},
	}
	for _, b := range bad {
		_, err := config.Load([]string{"--role", b.role}, b.env.get)
		wantError(t, err, b.name, b.want)
	}
}
