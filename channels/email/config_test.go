package email_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gymhq/herald/channels/email"
)

func TestConfigValidate(t *testing.T) {
	valid := func() email.Config {
		return email.Config{Addr: "smtp.example.com:587", From: "Gym <no-reply@gym.example>"}
	}
	tests := []struct {
		name  string
		edit  func(c *email.Config)
		field string // "" when valid
	}{
		{name: "minimal", edit: func(c *email.Config) {}},
		{name: "everything set", edit: func(c *email.Config) {
			c.Username, c.Password = "u", "p"
			c.TLS = email.TLSOpportunistic
			c.PoolSize, c.Timeout = 8, 30*time.Second
			c.HeloName, c.MessageIDDomain = "worker-1.gym.example", "mail.gym.example"
		}},
		{name: "bare From", edit: func(c *email.Config) { c.From = "no-reply@gym.example" }},
		{name: "IPv6 Addr", edit: func(c *email.Config) { c.Addr = "[::1]:587" }},
		{name: "credentials without TLS to loopback", edit: func(c *email.Config) {
			c.Addr, c.TLS, c.Username, c.Password = "127.0.0.1:25", email.TLSNone, "u", "p"
		}},

		{name: "no Addr", edit: func(c *email.Config) { c.Addr = "" }, field: "Addr"},
		{name: "Addr without port", edit: func(c *email.Config) { c.Addr = "smtp.example.com" }, field: "Addr"},
		{name: "Addr without host", edit: func(c *email.Config) { c.Addr = ":587" }, field: "Addr"},
		{name: "Addr with named port", edit: func(c *email.Config) { c.Addr = "smtp.example.com:submission" }, field: "Addr"},
		{name: "Addr port out of range", edit: func(c *email.Config) { c.Addr = "smtp.example.com:70000" }, field: "Addr"},
		{name: "unknown TLS mode", edit: func(c *email.Config) { c.TLS = "required" }, field: "TLS"},
		{name: "Username without Password", edit: func(c *email.Config) { c.Username = "u" }, field: "Username"},
		{name: "Password without Username", edit: func(c *email.Config) { c.Password = "p" }, field: "Username"},
		{name: "credentials in plain text over the network", edit: func(c *email.Config) {
			c.TLS, c.Username, c.Password = email.TLSNone, "u", "p"
		}, field: "Username"},
		{name: "no From", edit: func(c *email.Config) { c.From = "" }, field: "From"},
		{name: "From not an address", edit: func(c *email.Config) { c.From = "Gym" }, field: "From"},
		{name: "negative PoolSize", edit: func(c *email.Config) { c.PoolSize = -1 }, field: "PoolSize"},
		{name: "negative Timeout", edit: func(c *email.Config) { c.Timeout = -time.Second }, field: "Timeout"},
		{name: "HeloName with space", edit: func(c *email.Config) { c.HeloName = "a b" }, field: "HeloName"},
		{name: "MessageIDDomain with space", edit: func(c *email.Config) { c.MessageIDDomain = "gym example" }, field: "MessageIDDomain"},
		{name: "From domain unusable for Message-ID", edit: func(c *email.Config) { c.From = "no-reply@gym.exámple" }, field: "MessageIDDomain"},
		{name: "unusable From domain with MessageIDDomain set", edit: func(c *email.Config) {
			c.From, c.MessageIDDomain = "no-reply@gym.exámple", "gym.example"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			before := c
			err := c.Validate()
			if c != before {
				t.Error("Validate modified the Config")
			}
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ce *email.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate = %v, want a *ConfigError for %s", err, tt.field)
			}
			if ce.Field != tt.field {
				t.Errorf("error names field %s, want %s (%v)", ce.Field, tt.field, err)
			}
		})
	}
}
