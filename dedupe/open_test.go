package dedupe_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/redistest"
)

func TestOpen(t *testing.T) {
	cases := []struct {
		url     string
		network string
		addr    string
		db      int
		tls     bool
	}{
		{"redis://localhost:6379/0", "tcp", "localhost:6379", 0, false},
		{"redis://:s3cret@redis.internal:6380/2", "tcp", "redis.internal:6380", 2, false},
		{"redis://redis.internal", "tcp", "redis.internal:6379", 0, false},
		{"rediss://user:s3cret@cache.example.com:6380/1", "tcp", "cache.example.com:6380", 1, true},
		{"unix:///run/redis/redis.sock?db=3", "unix", "/run/redis/redis.sock", 3, false},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			c, err := dedupe.Open(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			o := c.(*redis.Client).Options()
			if o.Network != tc.network || o.Addr != tc.addr || o.DB != tc.db || (o.TLSConfig != nil) != tc.tls {
				t.Fatalf("options: network %s addr %s db %d tls %v; want %s %s %d %v",
					o.Network, o.Addr, o.DB, o.TLSConfig != nil, tc.network, tc.addr, tc.db, tc.tls)
			}
		})
	}
}

func TestOpenErrorsNameTheProblemNotThePassword(t *testing.T) {
	const password = "pa55word"
	cases := []struct {
		url  string
		want string
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"http://:" + password + "@h:6379", `scheme "http" is not supported`},
		{"redis://:" + password + "@h:6379/abc", "invalid database number"},
		{"redis://:" + password + "@h:6379/0?nonsense=1", "unexpected option: nonsense"},
		{"redis://:" + password + "@h:6379/0?dial_timeout=soon", "invalid dial_timeout"},
		{"unix://:" + password + "@", "empty unix socket path"},
		// An unescaped '/' makes net/url read part of the password as a port.
		{"redis://u:" + password + "/x@h:6379/0", "malformed"},
		{"redis://u:" + password + "%zz@h", "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			_, err := dedupe.Open(tc.url)
			if err == nil {
				t.Fatal("Open succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "pa55") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestOpenUnixSocket(t *testing.T) {
	srv := redistest.Start(t)
	c, err := dedupe.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	store := dedupe.NewRedis(c, dedupe.Options{})
	defer store.Close()
	if _, err := store.Get(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
}
