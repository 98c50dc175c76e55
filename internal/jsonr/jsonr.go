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
//
// Its steps are those of the package's parser (parse.go), which reads any
// JSON as encoding/json does, errors and all: package events parses
// booking events with it (ParseTop), and its fuzz test holds it to
// encoding/json.
package jsonr

import (
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Reader reads JSON values from a string in turn, with the parser's steps
// (parse.go, held to encoding/json by events' FuzzParseMatchesEncodingJSON).
// The string must be valid UTF-8: its callers check the whole record
// first, as events.Decode does. Once a step fails, Ok is false and every
// later step fails too.
type Reader struct {
	p  parser
	Ok bool
}

// New returns a Reader of b from its start.
func New(b string) Reader {
	return Reader{p: parser{b: unsafe.Slice(unsafe.StringData(b), len(b)), s: b}, Ok: true}
}

// Offset is how many bytes have been read.
func (r *Reader) Offset() int { return r.p.i }

// Done reports whether every step succeeded and b is read to its end.
func (r *Reader) Done() bool { return r.Ok && r.p.i == len(r.p.b) }

// Lit consumes s if the input continues with it, and reports whether it
// did; a miss leaves the Reader as it was (Ok unchanged).
func (r *Reader) Lit(s string) bool {
	if r.Ok && strings.HasPrefix(r.p.s[r.p.i:], s) {
		r.p.i += len(s)
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

// at reports whether the next byte is c.
func (r *Reader) at(c byte) bool {
	return r.Ok && r.p.i < len(r.p.b) && r.p.b[r.p.i] == c
}

// String reads a JSON string. Without escapes it is a substring of b;
// with them, a new string unquoted as encoding/json unquotes.
func (r *Reader) String() string {
	if !r.at('"') {
		r.Ok = false
		return ""
	}
	s, err := r.p.str()
	if err != nil {
		r.Ok = false
	}
	return s
}

// Time reads a time as encoding/json does: time.Time's UnmarshalJSON on
// the string token, quotes and any escapes included. null fails.
func (r *Reader) Time() time.Time {
	start := r.p.i
	if _ = r.String(); !r.Ok {
		return time.Time{}
	}
	var t time.Time
	if err := t.UnmarshalJSON(r.p.b[start:r.p.i]); err != nil {
		r.Ok = false
	}
	return t
}

// Int reads an integer as encoding/json reads one into an int (64 bits
// here): a number without fraction or exponent, within range.
func (r *Reader) Int() int {
	if !r.Ok || r.p.i >= len(r.p.b) || r.p.b[r.p.i] != '-' && (r.p.b[r.p.i] < '0' || r.p.b[r.p.i] > '9') {
		r.Ok = false
		return 0
	}
	num, err := r.p.number()
	if err != nil {
		r.Ok = false
		return 0
	}
	v, err := strconv.ParseInt(string(num), 10, strconv.IntSize)
	if err != nil {
		r.Ok = false
	}
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

// Object reads null, returning false, or an object of string values,
// calling add with each member in document order (a repeated key too:
// encoding/json keeps its last value).
func (r *Reader) Object(add func(k, v string)) bool {
	if r.Lit("null") {
		return false
	}
	r.Expect("{")
	if r.Lit("}") {
		return true
	}
	for r.Ok {
		k := r.String()
		r.Expect(":")
		v := r.String()
		if !r.Ok {
			return true
		}
		add(k, v)
		if r.Lit("}") {
			return true
		}
		r.Expect(",")
	}
	return true
}

// Skip reads one JSON value of any kind, checked as encoding/json checks
// it (white space allowed between its tokens, nesting to its limit),
// without building it, and returns its bytes.
func (r *Reader) Skip() string {
	start := r.p.i
	if !r.Ok {
		return ""
	}
	r.p.skip = true
	_, err := r.p.value(0)
	r.p.skip = false
	if err != nil {
		r.Ok = false
		return ""
	}
	return r.p.s[start:r.p.i]
}
