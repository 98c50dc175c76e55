package sms_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/channels/sms"
)

func TestConfigValidate(t *testing.T) {
	valid := sms.Config{AccountSID: accountSID, AuthToken: authToken, From: from}
	tests := []struct {
		name    string
		edit    func(*sms.Config)
		wantErr string // substring naming the field; "" for valid
	}{
		{"minimal", func(*sms.Config) {}, ""},
		{"defaults spelled out", func(c *sms.Config) { c.APIURL, c.Timeout = sms.DefaultAPIURL, sms.DefaultTimeout }, ""},
		{"messaging service only", func(c *sms.Config) { c.From, c.MessagingServiceSID = "", serviceSID }, ""},
		{"from and messaging service", func(c *sms.Config) { c.MessagingServiceSID = serviceSID }, ""},
		{"alphanumeric sender", func(c *sms.Config) { c.From = "GymHQ Spin" }, ""},
		{"short code", func(c *sms.Config) { c.From = "89887" }, ""},
		{"validity bounds", func(c *sms.Config) { c.ValidityPeriod = 36000 * time.Second }, ""},
		{"validity one second", func(c *sms.Config) { c.ValidityPeriod = time.Second }, ""},
		{"status callback with query", func(c *sms.Config) { c.StatusCallback = "https://h.example.com/cb?x=1" }, ""},
		{"local fake", func(c *sms.Config) { c.APIURL = "http://127.0.0.1:8081" }, ""},

		{"no account", func(c *sms.Config) { c.AccountSID = "" }, "AccountSID"},
		{"account not a SID", func(c *sms.Config) { c.AccountSID = "SK0123456789abcdef0123456789abcdef" }, "AccountSID"},
		{"short account", func(c *sms.Config) { c.AccountSID = "AC0123" }, "AccountSID"},
		{"no token", func(c *sms.Config) { c.AuthToken = "" }, "AuthToken"},
		{"token with symbols", func(c *sms.Config) { c.AuthToken = "abc$def" }, "AuthToken"},
		{"no sender", func(c *sms.Config) { c.From = "" }, "From or MessagingServiceSID"},
		{"from not E.164", func(c *sms.Config) { c.From = "07700900123x!" }, "From"},
		{"from missing plus", func(c *sms.Config) { c.From = "441234567890" }, "From"},
		{"sender id too long", func(c *sms.Config) { c.From = "GymHQLondonSpin" }, "From"},
		{"sender id digits only", func(c *sms.Config) { c.From = "1234567" }, "From"},
		{"bad service sid", func(c *sms.Config) { c.MessagingServiceSID = "MG12" }, "MessagingServiceSID"},
		{"validity too long", func(c *sms.Config) { c.ValidityPeriod = 36001 * time.Second }, "ValidityPeriod"},
		{"validity too short", func(c *sms.Config) { c.ValidityPeriod = 500 * time.Millisecond }, "ValidityPeriod"},
		{"validity fractional", func(c *sms.Config) { c.ValidityPeriod = 1500 * time.Millisecond }, "ValidityPeriod"},
		{"validity negative", func(c *sms.Config) { c.ValidityPeriod = -time.Second }, "ValidityPeriod"},
		{"negative timeout", func(c *sms.Config) { c.Timeout = -time.Second }, "Timeout"},
		{"api url relative", func(c *sms.Config) { c.APIURL = "api.twilio.com" }, "APIURL"},
		{"api url ftp", func(c *sms.Config) { c.APIURL = "ftp://api.twilio.com" }, "APIURL"},
		{"api url with query", func(c *sms.Config) { c.APIURL = "https://api.twilio.com?x=1" }, "APIURL"},
		{"callback relative", func(c *sms.Config) { c.StatusCallback = "/cb" }, "StatusCallback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := sms.New(c); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.wantErr)
			}
			if _, err := sms.New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}
