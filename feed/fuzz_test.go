package feed

import (
	"strconv"
	"testing"
)

// FuzzParsePos: a client's Last-Event-ID is outside input. ParsePos never
// panics, accepts only "<ms>-<seq>" that formats back to itself, and Later
// orders what it accepts.
func FuzzParsePos(f *testing.F) {
	for _, s := range []string{"1796363621394-0", "0-0", "", "-", "1-", "-1", "18446744073709551615-18446744073709551615", "1e3-0", " 1-0", "1-0\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, seq, err := ParsePos(s)
		if err != nil {
			if Later(s, "0-0") {
				t.Fatalf("Later(%q, 0-0) for a malformed position", s)
			}
			return
		}
		if back := strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq, 10); back != s && !leadingZeros(s) {
			t.Fatalf("ParsePos(%q) = %d, %d", s, ms, seq)
		}
		if Later(s, s) {
			t.Fatalf("Later(%q, itself)", s)
		}
	})
}

func leadingZeros(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '0' && (i == 0 || s[i-1] == '-') && s[i+1] >= '0' && s[i+1] <= '9' {
			return true
		}
	}
	return false
}

// FuzzParseChange: what arrives on the pub/sub channel is parsed without
// panicking, and a change made of four newline-free parts and data
// round-trips.
func FuzzParseChange(f *testing.F) {
	f.Add("n\np1\n1-0\n\n{}")
	f.Add("r\np1\n\n\n{\"id\":\"x\"}")
	f.Add("")
	f.Add("nn\n\n\n\n")
	f.Fuzz(func(t *testing.T, p string) {
		c, ok := parseChange(p)
		if ok && (len(c.Person) > len(p) || len(c.Data) > len(p)) {
			t.Fatalf("parseChange(%q) = %+v", p, c)
		}
	})
}
