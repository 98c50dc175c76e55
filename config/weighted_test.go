package config_test

import (
	"strings"
	"testing"

	"github.com/gymhq/herald/config"
)

func TestProviderLists(t *testing.T) {
	ws, err := config.ParseWeighted(" smtp-a:587*3 , smtp-b:587")
	if err != nil || len(ws) != 2 || ws[0] != (config.Weighted{Value: "smtp-a:587", Weight: 3}) || ws[1].Weight != 1 {
		t.Fatalf("ParseWeighted: %+v %v", ws, err)
	}
	base := map[string]string{
		"HERALD_KAFKA_BROKERS": "k:9092", "HERALD_REDIS_URL": "redis://r:6379/0", "HERALD_EMAIL_FROM": "Gym <g@example.com>",
	}
	for _, tt := range []struct{ value, want string }{
		{"a.example:587,b.example:2525*2", ""},
		{"a.example:587*0", "weight"},
		{"a.example:587*x", "weight"},
		{"a.example:587,,b.example:587", "empty"},
		{"a.example:587,a.example:587", "twice"},
		{"a.example:587,b.example", "host:port"},
	} {
		env := map[string]string{"HERALD_SMTP_ADDR": tt.value}
		for k, v := range base {
			env[k] = v
		}
		_, err := config.Load([]string{"--role", "email"}, func(k string) string { return env[k] })
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.value, err)
		case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), "HERALD_SMTP_ADDR") || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: %v, want one line naming HERALD_SMTP_ADDR and %q", tt.value, err, tt.want)
		}
	}
}
