package templates

import (
	"strings"
	"testing"
)

// gsmSeptetsRef is gsmSeptets before its ASCII table: every rune searched
// for in the alphabets. TestGSMSeptetsMatchesReference holds gsmSeptets
// to it.
func gsmSeptetsRef(s string) (int, rune, bool) {
	n := 0
	for _, r := range s {
		switch {
		case strings.ContainsRune(gsmBasic, r):
			n++
		case strings.ContainsRune(gsmExtended, r):
			n += 2
		default:
			return 0, r, false
		}
	}
	return n, 0, true
}

// gsmSeptets agrees with the reference on every rune, and on text.
func TestGSMSeptetsMatchesReference(t *testing.T) {
	check := func(s string) {
		n, r, ok := gsmSeptets(s)
		wn, wr, wok := gsmSeptetsRef(s)
		if n != wn || r != wr || ok != wok {
			t.Fatalf("gsmSeptets(%q) = %d, %q, %v; reference %d, %q, %v", s, n, r, ok, wn, wr, wok)
		}
	}
	for r := rune(0); r <= 0x10FFFF; r++ {
		check(string(r))
	}
	for _, s := range []string{"", "Hi Ana, your class {at} 7:00 [Studio 2] ~ 5€", "a\xffb", "Zoë 💪", "\x00\x7f`"} {
		check(s)
	}
}
