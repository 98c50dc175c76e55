package dedupe

import (
	"strings"
	"testing"
)

func TestParseInfo(t *testing.T) {
	m := parseInfo("# Server\r\nredis_version:7.0.15\r\nredis_mode:cluster\r\n\r\n# Memory\r\nmaxmemory_policy:allkeys-lru\r\nodd line\r\nexecutable:/usr/bin/redis-server\r\n")
	for k, want := range map[string]string{"redis_mode": "cluster", "maxmemory_policy": "allkeys-lru", "redis_version": "7.0.15", "executable": "/usr/bin/redis-server"} {
		if m[k] != want {
			t.Errorf("%s = %q, want %q", k, m[k], want)
		}
	}
	if len(m) != 4 {
		t.Errorf("parsed %v, want 4 fields", m)
	}
}

// FuzzParseInfo: INFO comes from the server (or a proxy in front of it);
// whatever it says, parsing never panics and every field comes from a line
// of it.
func FuzzParseInfo(f *testing.F) {
	f.Add("# Memory\r\nmaxmemory_policy:noeviction\r\n")
	f.Add("redis_mode:sentinel\n:\n#\n\r\nk:v:w")
	f.Fuzz(func(t *testing.T, s string) {
		for k, v := range parseInfo(s) {
			if !strings.Contains(s, k+":"+v) {
				t.Fatalf("field %q:%q is not in the input", k, v)
			}
		}
	})
}
