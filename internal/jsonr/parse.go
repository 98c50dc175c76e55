package jsonr

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// parser reads JSON in one pass into generic values (an event's data, for
// package events): objects as map[string]any, arrays as []any, numbers as
// json.Number as written, strings, booleans and nil. It accepts exactly
// what encoding/json accepts (json.Unmarshal into an any with UseNumber)
// and yields the same values, duplicate keys included (the last wins);
// FuzzParseMatchesEncodingJSON holds it to that.
//
// Decode used to run encoding/json twice (the envelope into a struct with
// data left raw, then data into a map through a Decoder that copied it
// again): three scans of the bytes, with reflection. This is one scan.
// Every string is a substring of one copy of the input, so the values share
// no memory with the caller's bytes and cost one allocation between them.
//
// Callers have checked that the input is valid UTF-8 (events.Decode and
// the Reader's callers refuse anything else first), so strings need no
// replacement characters except for \u escapes of lone surrogates, which
// encoding/json turns into U+FFFD.
//
// With skip set it checks the same syntax and builds nothing: every value
// is nil (Reader.Skip).
type parser struct {
	b    []byte
	s    string // the same bytes, copied once; strings are cut from it
	i    int
	skip bool
	// dirty is set by str: the string it read had an escape or a byte
	// outside printable ASCII (0x20–0x7e).
	dirty bool
	// text, when set, cleans string values as they are read (ParseTopText);
	// cleaning is whether the value being read is one it cleans.
	text     *Text
	cleaning bool
}

// Text says which string values ParseTopText passes through Clean:
// every string inside the top-level members that Member accepts, at any
// depth, except inside the values of members (at any depth below) that
// Keep names, which are left whole. Keys are never cleaned.
//
// events.Decode cleans display text this way (events.CleanText, sparing
// addresses) in the one pass that reads it: a second walk of the decoded
// maps was a sixth of its time.
type Text struct {
	Member func(key string) bool
	Keep   func(key string) bool
	// Clean is called only for a string with an escape or a byte outside
	// printable ASCII, so it must return every string of printable ASCII
	// (0x20–0x7e) unchanged.
	Clean func(s string) string
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// SyntaxError is a parse failure at byte offset Off, its message
// encoding/json's.
type SyntaxError struct {
	Msg string
	Off int
}

func (e *SyntaxError) Error() string { return e.Msg }

func (p *parser) fail(format string, args ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, args...), Off: p.i}
}

// unexpected reports the byte at p.i, or the end of input.
func (p *parser) unexpected(context string) error {
	if p.i >= len(p.b) {
		return p.fail("unexpected end of JSON input")
	}
	return p.fail("invalid character %s %s", quoteChar(p.b[p.i]), context)
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// Member is one member of the top-level object, in document order, with
// the span of its value's bytes.
type Member struct {
	Key        string
	Value      any
	Start, End int
}

// ParseTop reads b, which must hold one JSON object and nothing after it
// but white space, into its members in document order.
func ParseTop(b []byte) ([]Member, error) {
	return ParseTopText(b, nil)
}

// ParseTopText is ParseTop with the strings that t selects cleaned as
// they are read; a nil t cleans nothing.
func ParseTopText(b []byte, t *Text) ([]Member, error) {
	p := &parser{b: b, s: string(b), text: t}
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil, p.unexpected("looking for beginning of value")
	}
	// A CloudEvent has up to eight members (specversion, id, source,
	// type, time, subject, datacontenttype, data); room for them at once
	// rather than growing the slice three times.
	members := make([]Member, 0, 8)
	if err := p.members(0, func(k string, v any, start int) {
		members = append(members, Member{Key: k, Value: v, Start: start, End: p.i})
	}); err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.b) {
		return nil, p.unexpected("after top-level value")
	}
	return members, nil
}

// ParseValue reads b, one JSON value and nothing after it but white space.
func ParseValue(b []byte) (any, error) {
	p := &parser{b: b, s: string(b)}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.b) {
		return nil, p.unexpected("after top-level value")
	}
	return v, nil
}

// value reads the value at p.i (white space already skipped) at nesting
// depth.
func (p *parser) value(depth int) (any, error) {
	if p.i >= len(p.b) {
		return nil, p.unexpected("")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		if depth >= maxDepth {
			return nil, p.fail("exceeded max depth")
		}
		return p.object(depth)
	case c == '[':
		if depth >= maxDepth {
			return nil, p.fail("exceeded max depth")
		}
		return p.array(depth + 1)
	case c == '"':
		s, err := p.str()
		if p.skip || err != nil {
			return nil, err
		}
		if p.cleaning && p.dirty {
			s = p.text.Clean(s)
		}
		return s, nil
	case c == '-' || (c >= '0' && c <= '9'):
		n, err := p.number()
		if p.skip {
			return nil, err
		}
		return n, err
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.unexpected("looking for beginning of value")
}

func (p *parser) literal(word string) error {
	for j := 0; j < len(word); j++ {
		if p.i >= len(p.b) {
			return p.unexpected("")
		}
		if p.b[p.i] != word[j] {
			return p.unexpected("in literal " + word + " (expecting " + quoteChar(word[j]) + ")")
		}
		p.i++
	}
	return nil
}

func (p *parser) object(depth int) (any, error) {
	if p.skip {
		return nil, p.members(depth, func(string, any, int) {})
	}
	m := map[string]any{}
	if err := p.members(depth, func(k string, v any, _ int) { m[k] = v }); err != nil {
		return nil, err
	}
	return m, nil
}

// members reads the object at p.i (its opening brace), whose values sit at
// nesting depth+1, handing each member to add in document order with the
// offset its value starts at; p.i is then past the value.
func (p *parser) members(depth int, add func(k string, v any, start int)) error {
	p.i++ // {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return p.unexpected("looking for beginning of object key string")
		}
		k, err := p.str()
		if err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.unexpected("after object key")
		}
		p.i++
		p.space()
		start := p.i
		cleaning := p.cleaning
		if p.text != nil {
			if depth == 0 {
				p.cleaning = p.text.Member(k)
			} else if cleaning && p.text.Keep(k) {
				p.cleaning = false
			}
		}
		v, err := p.value(depth + 1)
		p.cleaning = cleaning
		if err != nil {
			return err
		}
		add(k, v, start)
		if more, err := p.next('}', "after object key:value pair"); !more {
			return err
		}
	}
}

// next reads, after white space, the comma before another element (more)
// or end, the closing bracket (neither more nor an error); anything else
// is the error, with context.
func (p *parser) next(end byte, context string) (more bool, err error) {
	p.space()
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case ',':
			p.i++
			return true, nil
		case end:
			p.i++
			return false, nil
		}
	}
	return false, p.unexpected(context)
}

func (p *parser) array(depth int) (any, error) {
	p.i++ // [
	a := []any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return p.built(a), nil
	}
	for {
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		if !p.skip {
			a = append(a, v)
		}
		if more, err := p.next(']', "after array element"); !more {
			if err != nil {
				return nil, err
			}
			return p.built(a), nil
		}
	}
}

// built is a, or nil when skipping (a slice in an interface is an
// allocation).
func (p *parser) built(a []any) any {
	if p.skip {
		return nil
	}
	return a
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? as written.
func (p *parser) number() (json.Number, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		digits()
	default:
		return "", p.unexpected("in numeric literal")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return "", p.unexpected("after decimal point in numeric literal")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return "", p.unexpected("in exponent of numeric literal")
		}
	}
	return json.Number(p.s[start:p.i]), nil
}

// str reads the string at p.i (its opening quote). One without escapes is
// a substring of p.s; one with escapes is built. It sets p.dirty.
//
// It looks at eight bytes at a time while none of them is a quote, a
// backslash or a control character (the bit tricks of "Bit Twiddling
// Hacks", haszero and hasless), and notes whether any is outside
// printable ASCII; the byte loop finishes from the first word that has
// one of them.
func (p *parser) str() (string, error) {
	p.i++ // "
	start := p.i
	var high uint64 // nonzero once a byte of 0x7f or more was seen
	for p.i+8 <= len(p.b) {
		w := binary.LittleEndian.Uint64(p.b[p.i:])
		q := w ^ (ones * '"')
		bs := w ^ (ones * '\\')
		if ((w-ones*0x20)&^w|(q-ones)&^q|(bs-ones)&^bs)&highs != 0 {
			break
		}
		d := w ^ (ones * 0x7f)
		high |= w&highs | (d-ones)&^d&highs
		p.i += 8
	}
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			p.dirty = high != 0
			return s, nil
		case c == '\\':
			p.dirty = true
			return p.escaped(start)
		case c < 0x20:
			return "", p.unexpected("in string literal")
		default:
			if c >= 0x7f {
				high = 1
			}
			p.i++
		}
	}
	return "", p.unexpected("")
}

// ones and highs are 0x01 and 0x80 in every byte of a word.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// escaped finishes a string that started at start and has an escape at p.i.
func (p *parser) escaped(start int) (string, error) {
	out := make([]byte, 0, p.i-start+16)
	out = append(out, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c < 0x20:
			return "", p.unexpected("in string literal")
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		p.i++ // backslash
		if p.i >= len(p.b) {
			return "", p.unexpected("")
		}
		switch e := p.b[p.i]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				// A pair makes one rune; anything else is U+FFFD, as
				// encoding/json decodes it.
				r2 := rune(-1)
				if p.i+6 < len(p.b) && p.b[p.i+1] == '\\' && p.b[p.i+2] == 'u' {
					save := p.i
					p.i += 2
					if x, err := p.hex4(); err == nil {
						r2 = x
					} else {
						return "", err
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						break
					}
					p.i = save
				}
				out = utf8.AppendRune(out, utf8.RuneError)
				break
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", p.unexpected("in string escape code")
		}
		p.i++
	}
	return "", p.unexpected("")
}

// hex4 reads the four hex digits after \u; p.i is on the 'u' and is left
// on the last digit.
func (p *parser) hex4() (rune, error) {
	var r rune
	for j := 0; j < 4; j++ {
		p.i++
		if p.i >= len(p.b) {
			return 0, p.unexpected("")
		}
		c := p.b[p.i]
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, p.unexpected("in \\u hexadecimal character escape")
		}
	}
	return r, nil
}
