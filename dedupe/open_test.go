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

// TestConnectModes: seeds become the cluster's or the sentinels' addresses,
// with default ports, and the URL's credentials, TLS and options (or the
// separate ones) apply to every node.
func TestConnectModes(t *testing.T) {
	c, err := dedupe.Connect(dedupe.Target{
		URL:  "rediss://n0.example:7000?dial_timeout=3s&pool_size=7,rediss://n1.example?dial_timeout=3s&pool_size=7",
		Mode: dedupe.Cluster, Security: dedupe.Security{Username: "herald", Password: "s3cret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	co := c.(*redis.ClusterClient).Options()
	if strings.Join(co.Addrs, ",") != "n0.example:7000,n1.example:6379" || co.Username != "herald" || co.Password != "s3cret" ||
		co.TLSConfig == nil || co.TLSConfig.ServerName != "n0.example" || co.PoolSize != 7 || co.DialTimeout.String() != "3s" {
		t.Errorf("cluster options: addrs %v user %q password %q tls %v pool %d dial %v",
			co.Addrs, co.Username, co.Password, co.TLSConfig != nil, co.PoolSize, co.DialTimeout)
	}

	s, err := dedupe.Connect(dedupe.Target{URL: "redis://:pw@s0,redis://:pw@s1:26380/2", Mode: dedupe.Sentinel, MasterName: "mymaster"})
	if err == nil {
		s.Close()
		t.Fatal("seeds with different databases were accepted")
	}
	s, err = dedupe.Connect(dedupe.Target{URL: "redis://:pw@s0/2,redis://:pw@s1:26380/2", Mode: dedupe.Sentinel, MasterName: "mymaster"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if o := s.(*redis.Client).Options(); o.DB != 2 || o.Password != "pw" {
		t.Errorf("sentinel master options: db %d password %q", o.DB, o.Password)
	}
}

func TestConnectErrors(t *testing.T) {
	cases := []struct {
		name string
		t    dedupe.Target
		want string
	}{
		{"a list in single mode", dedupe.Target{URL: "redis://a,redis://b"}, "2 URLs given for a single server"},
		{"unknown mode", dedupe.Target{URL: "redis://a", Mode: "ring"}, `mode "ring"`},
		{"sentinel without a name", dedupe.Target{URL: "redis://a", Mode: dedupe.Sentinel}, "master's name"},
		{"a socket seed", dedupe.Target{URL: "unix:///r.sock", Mode: dedupe.Cluster}, "needs redis:// or rediss://"},
		{"a cluster database", dedupe.Target{URL: "redis://a/3", Mode: dedupe.Cluster}, "only database 0"},
		{"mixed schemes", dedupe.Target{URL: "rediss://a,redis://b", Mode: dedupe.Cluster}, "differs from the first"},
		{"mixed passwords", dedupe.Target{URL: "redis://:pa55word@a,redis://:other@b", Mode: dedupe.Cluster}, "differs from the first"},
		{"two passwords", dedupe.Target{URL: "redis://:pa55word@a", Mode: dedupe.Cluster, Security: dedupe.Security{Password: "x"}}, "use one"},
		{"TLS files without rediss", dedupe.Target{URL: "redis://a", Mode: dedupe.Cluster, Security: dedupe.Security{CAFile: "/ca.pem"}}, "not rediss://"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dedupe.Connect(tc.t)
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "pa55") {
				t.Errorf("error %q: want it to say %q and never the password", err, tc.want)
			}
		})
	}
}
