package events

import (
	"strings"
	"unicode/utf8"
)

// CleanText returns s fit to show a person: the one function that makes
// event text safe for display, applied by Decode to every string in the
// event's data except addresses, so every channel and every template gets
// the same text.
//
// Display text is one line of visible characters. CleanText therefore
//
//   - replaces line and tab characters (\t \n \v \f \r, U+0085, U+2028,
//     U+2029) with a space, so text cannot start a new header line in an
//     email or a new line in a push title;
//   - removes terminal escape sequences whole (ESC [ … final byte, ESC ] …
//     BEL or ESC \, and two-character ESC sequences), so "\x1b[31m" leaves
//     no "[31m" behind, and the C1 control sequence introducer likewise;
//   - removes every other C0 and C1 control character and DEL (NUL, BEL, …);
//   - removes bidirectional formatting characters: the embeddings and
//     overrides U+202A–U+202E, the isolates U+2066–U+2069 and the marks
//     U+200E, U+200F and U+061C, with which a name can make a subject or a
//     sender read backwards ("Trojan Source").
//
// It strips rather than rejects: a member whose name was pasted with a
// stray control character still hears that their class is cancelled. Text
// needing none of this is returned as it is, without allocating.
func CleanText(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if needsCleaning(r) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case !needsCleaning(r):
			b.WriteRune(r)
		case r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029:
			b.WriteByte(' ')
		case r == 0x1b:
			i = skipEscape(s, i)
		case r == 0x9b:
			i = skipCSI(s, i)
		}
	}
	return b.String()
}

// needsCleaning reports whether CleanText changes r.
func needsCleaning(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c:
		return true
	case r < 0x200e:
		return false
	case r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// skipEscape returns the index in s after the escape sequence whose ESC
// ended just before i.
func skipEscape(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch c := s[i]; {
	case c == '[':
		return skipCSI(s, i+1)
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		// OSC, DCS, SOS, PM, APC: a string ended by BEL or ST (ESC \).
		for j := i + 1; j < len(s); j++ {
			if s[j] == 0x07 {
				return j + 1
			}
			if s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\' {
				return j + 2
			}
		}
		return len(s)
	case c >= 0x20 && c <= 0x7e:
		return i + 1
	}
	return i
}

// skipCSI returns the index after the control sequence whose introducer
// ended just before i: parameter bytes 0x30–0x3F, intermediate bytes
// 0x20–0x2F, then one final byte 0x40–0x7E.
func skipCSI(s string, i int) int {
	for i < len(s) && s[i] >= 0x30 && s[i] <= 0x3f {
		i++
	}
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++
	}
	if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
		i++
	}
	return i
}

// addressKey reports whether k names a data field that holds addresses
// (email, phone, push_tokens). Decode leaves them as they are: an address
// is checked, never edited, since an edited address would be somebody
// else's.
func addressKey(k string) bool {
	switch k {
	case "email", "phone", "push_tokens":
		return true
	}
	return false
}
