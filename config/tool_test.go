package config_test

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gymhq/herald/config"
)

func TestLoadTool(t *testing.T) {
	names := []string{"HERALD_KAFKA_BROKERS", "HERALD_EVENTS_TOPIC", "HERALD_REDIS_URL"}
	secret := filepath.Join(t.TempDir(), "redis-url")
	if err := os.WriteFile(secret, []byte("redis://:pw@127.0.0.1:6379/0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c *config.Config)
	}{
		{name: "env, _FILE and defaults", args: []string{"--since", "2h"},
			env: map[string]string{"HERALD_KAFKA_BROKERS": "k1:9092, k2:9092", "HERALD_REDIS_URL_FILE": secret},
			check: func(t *testing.T, c *config.Config) {
				if strings.Join(c.KafkaBrokers, ",") != "k1:9092,k2:9092" || c.EventsTopic != "gym.bookings.v1" || c.RedisURL != "redis://:pw@127.0.0.1:6379/0" {
					t.Errorf("got %v %q %q", c.KafkaBrokers, c.EventsTopic, c.RedisURL)
				}
			}},
		{name: "flag over env", args: []string{"--kafka-brokers", "f:1"}, env: map[string]string{"HERALD_KAFKA_BROKERS": "e:1"},
			check: func(t *testing.T, c *config.Config) {
				if c.KafkaBrokers[0] != "f:1" {
					t.Errorf("brokers %v", c.KafkaBrokers)
				}
			}},
		{name: "required missing", env: map[string]string{}, wantErr: "HERALD_KAFKA_BROKERS: required"},
		{name: "bad value names the variable", env: map[string]string{"HERALD_KAFKA_BROKERS": "no-port"}, wantErr: "HERALD_KAFKA_BROKERS: "},
		{name: "secret given twice", env: map[string]string{"HERALD_KAFKA_BROKERS": "k:1", "HERALD_REDIS_URL": "redis://x:1", "HERALD_REDIS_URL_FILE": secret},
			wantErr: "HERALD_REDIS_URL and HERALD_REDIS_URL_FILE are both set"},
		{name: "flag of a variable the tool does not read", args: []string{"--smtp-addr", "x:25"}, env: map[string]string{"HERALD_KAFKA_BROKERS": "k:1"},
			wantErr: "flag provided but not defined: -smtp-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("trace", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Duration("since", 0, "")
			c, err := config.LoadTool(fs, tt.args, func(k string) string { return tt.env[k] }, names, "HERALD_KAFKA_BROKERS")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
