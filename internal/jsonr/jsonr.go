// Package jsonr reads back, without reflection, the JSON that package jsonw
// writes: the scheduler's records and the readable form of the
// notifications they hold. encoding/json decoding those was 46% of the
// scheduler's CPU in the scheduled scenario (issue 14): a record decoded on
// every schedule, cancel and done record it consumes, and its notification
// decoded again to fire it or to log its cancellation.
//
// A Reader is a fast path, not a parser of JSON in general. Its callers
// read the exact layout their writer produces (field names, order, no
// whitespace) and, when any step fails, decode the same bytes with
// encoding/json instead, which then decides: so a Reader may refuse more
// than encoding/json does, but must never accept what encoding/json
// refuses or read a value differently. Each step that reads a value does
// what encoding/json does with it (times through time.Time's
// UnmarshalJSON on the same bytes, escapes unquoted by its rules), and the
// callers' fuzz tests hold their results to encoding/json's.
package jsonr

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Reader reads JSON values from B in turn from offset I. Once a step fails,
// Ok is false and every later step fails too.
type Reader struct {
	B  string
	I  int
	Ok bool
}

// New returns a Reader of b from its start.
func New(b string) Reader { return Reader{B: b, Ok: true} }

// Done reports whether every step succeeded and b is read to its end.
func (r *Reader) Done() bool { return r.Ok && r.I == len(r.B) }

// Lit consumes s if the input continues with it, and reports whether it
// did; a miss leaves the Reader as it was (Ok unchanged).
func (r *Reader) Lit(s string) bool {
	if r.Ok && strings.HasPrefix(r.B[r.I:], s) {
		r.I += len(s)
		return true
	}
	return false
}

// Expect consumes s, or fails.
func (r *Reader) Expect(s string) {
	if !r.Lit(s) {
		r.Ok = false
	}
}

// fail marks the Reader failed and returns zero values' stand-in.
func (r *Reader) fail() { r.Ok = false }

// quoted returns the string token at I, quotes included, and whether it
// has escapes; it fails on a control character, a malformed escape or a
// missing end quote, which encoding/json refuses too.
func (r *Reader) quoted() (tok string, escaped bool) {
	if !r.Ok || r.I >= len(r.B) || r.B[r.I] != '"' {
		r.fail()
		return "", false
	}
	s := r.B
	for i := r.I + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			tok = s[r.I : i+1]
			r.I = i + 1
			return tok, escaped
		case c == '\\':
			escaped = true
			if i+1 >= len(s) {
				r.fail()
				return "", false
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if hex4(s[i+2:]) < 0 {
					r.fail()
					return "", false
				}
				i += 5
			default:
				r.fail()
				return "", false
			}
		case c < 0x20:
			r.fail()
			return "", false
		}
	}
	r.fail()
	return "", false
}

// String reads a JSON string. Without escapes it is a substring of B;
// with them, a new string unquoted as encoding/json unquotes.
func (r *Reader) String() string {
	tok, escaped := r.quoted()
	if !r.Ok {
		return ""
	}
	body := tok[1 : len(tok)-1]
	if !escaped {
		if !utf8.ValidString(body) {
			// encoding/json writes U+FFFD for each invalid byte; not
			// worth doing here.
			r.fail()
			return ""
		}
		return body
	}
	return r.unquote(body)
}

// unquote is encoding/json's unquoteBytes for a body whose escapes quoted
// checked: invalid UTF-8 fails (encoding/json would write U+FFFD), and a
// \u escape of half a surrogate pair becomes U+FFFD, as there.
func (r *Reader) unquote(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			if c < utf8.RuneSelf {
				b.WriteByte(c)
				i++
				continue
			}
			rr, size := utf8.DecodeRuneInString(s[i:])
			if rr == utf8.RuneError && size == 1 {
				r.fail()
				return ""
			}
			b.WriteString(s[i : i+size])
			i += size
			continue
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			rr := rune(hex4(s[i+2:]))
			i += 6
			if utf16.IsSurrogate(rr) {
				if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if rr1 := hex4(s[i+2:]); rr1 >= 0 {
						if dec := utf16.DecodeRune(rr, rune(rr1)); dec != unicode.ReplacementChar {
							b.WriteRune(dec)
							i += 6
							continue
						}
					}
				}
				rr = unicode.ReplacementChar
			}
			b.WriteRune(rr)
			continue
		}
		i += 2
	}
	return b.String()
}

// hex4 is the value of the four hex digits s starts with, or -1.
func hex4(s string) int {
	if len(s) < 4 {
		return -1
	}
	v := 0
	for _, c := range []byte(s[:4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		v = v<<4 | int(c)
	}
	return v
}

// Time reads a time as encoding/json does: time.Time's UnmarshalJSON on
// the string token, quotes and any escapes included. null fails.
func (r *Reader) Time() time.Time {
	tok, _ := r.quoted()
	if !r.Ok {
		return time.Time{}
	}
	var t time.Time
	if err := t.UnmarshalJSON([]byte(tok)); err != nil {
		r.fail()
		return time.Time{}
	}
	return t
}

// Int reads an integer written without fraction or exponent, within int64
// (and so int on 64-bit platforms, where encoding/json's range check is
// the same); anything else fails.
func (r *Reader) Int() int {
	if !r.Ok {
		return 0
	}
	s := r.B[r.I:]
	j := 0
	if j < len(s) && s[j] == '-' {
		j++
	}
	start := j
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	digits := j - start
	if digits == 0 || digits > 18 || (digits > 1 && s[start] == '0') {
		r.fail()
		return 0
	}
	if j < len(s) && (s[j] == '.' || s[j] == 'e' || s[j] == 'E') {
		r.fail()
		return 0
	}
	v, err := strconv.ParseInt(s[:j], 10, strconv.IntSize)
	if err != nil {
		r.fail()
		return 0
	}
	r.I += j
	return int(v)
}

// Strings reads null (nil) or an array of strings (an empty one is empty,
// not nil, as encoding/json makes it).
func (r *Reader) Strings() []string {
	if r.Lit("null") {
		return nil
	}
	r.Expect("[")
	out := []string{}
	if r.Lit("]") {
		return out
	}
	for r.Ok {
		out = append(out, r.String())
		if r.Lit("]") {
			return out
		}
		r.Expect(",")
	}
	return nil
}

// Map reads null (nil) or an object of string values into m (made when
// nil and the object is not null; a repeated key keeps its last value, as
// in encoding/json).
func (r *Reader) Map(m map[string]string) map[string]string {
	if r.Lit("null") {
		return nil
	}
	r.Expect("{")
	if m == nil {
		m = map[string]string{}
	}
	if r.Lit("}") {
		return m
	}
	for r.Ok {
		k := r.String()
		r.Expect(":")
		v := r.String()
		if !r.Ok {
			return nil
		}
		m[k] = v
		if r.Lit("}") {
			return m
		}
		r.Expect(",")
	}
	return nil
}

// maxDepth bounds the nesting Skip follows; deeper values fail (and
// encoding/json, which allows 10,000, decides).
const maxDepth = 256

// Skip reads one JSON value of any kind, checked as strictly as
// encoding/json checks it (whitespace allowed between its tokens), and
// returns its bytes.
func (r *Reader) Skip() string {
	start := r.I
	r.value(0)
	if !r.Ok {
		return ""
	}
	return r.B[start:r.I]
}

func (r *Reader) space() {
	for r.I < len(r.B) {
		switch r.B[r.I] {
		case ' ', '\t', '\n', '\r':
			r.I++
		default:
			return
		}
	}
}

func (r *Reader) value(depth int) {
	if !r.Ok || r.I >= len(r.B) || depth > maxDepth {
		r.fail()
		return
	}
	switch c := r.B[r.I]; {
	case c == '"':
		r.quoted()
	case c == '{':
		r.I++
		r.space()
		if r.Lit("}") {
			return
		}
		for r.Ok {
			r.quoted()
			r.space()
			r.Expect(":")
			r.space()
			r.value(depth + 1)
			r.space()
			if r.Lit("}") {
				return
			}
			r.Expect(",")
			r.space()
		}
	case c == '[':
		r.I++
		r.space()
		if r.Lit("]") {
			return
		}
		for r.Ok {
			r.value(depth + 1)
			r.space()
			if r.Lit("]") {
				return
			}
			r.Expect(",")
			r.space()
		}
	case c == '-' || (c >= '0' && c <= '9'):
		r.number()
	default:
		if !r.Lit("true") && !r.Lit("false") && !r.Lit("null") {
			r.fail()
		}
	}
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *Reader) number() {
	s, i := r.B, r.I
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		r.fail()
		return
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			r.fail()
			return
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			r.fail()
			return
		}
	}
	r.I = i
}
