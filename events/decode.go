package events

import (
	"encoding/json"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zones must load on images without /usr/share/zoneinfo
	"unicode/utf8"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/jsonr"
)

// envelope is the wire shape of a structured-mode CloudEvent. Attributes are
// pointers so that "absent" and "empty" can be told apart in messages; Data
// is the data member's bytes and data its decoded object, when it is one.
type envelope struct {
	SpecVersion     *string
	ID              *string
	Source          *string
	Type            *string
	Time            *string
	Subject         *string
	DataContentType *string
	Data            json.RawMessage
	DataBase64      json.RawMessage
	data            map[string]any
	// values holds the attributes' strings (in the order of envelopeOf's
	// attrs), which the pointers above point into: one allocation for the
	// envelope, not one more per attribute.
	values [7]string
}

// dataText cleans the display text of an event's data as it is parsed:
// CleanText on every string under the data member, except addresses,
// which are checked and never edited (addressKey). Attributes are left
// as they are.
var dataText = jsonr.Text{
	Member: dataMember,
	Keep:   addressKey,
	Clean:  CleanText,
}

// dataMember reports whether a top-level member named k is the data
// member: matched case-insensitively, as encoding/json matched the tag.
func dataMember(k string) bool { return strings.EqualFold(k, "data") }

// envelopeOf parses b in one pass (jsonr.ParseTop) and sorts its members into the
// envelope as json.Unmarshal into the tagged struct did before: a member
// name matches an attribute exactly or, failing that, case-insensitively
// (strings.EqualFold, as encoding/json folds); the last member to match
// wins; null leaves an attribute absent; the first attribute that is not
// a string is the error, after the syntax of all of b was checked.
func envelopeOf(b []byte) (*envelope, error) {
	members, err := jsonr.ParseTopText(b, &dataText)
	if err != nil {
		se := err.(*jsonr.SyntaxError)
		if se.Msg == "unexpected end of JSON input" {
			return nil, decodeErrorf("event is not valid JSON: %s", se.Msg)
		}
		return nil, decodeErrorf("event is not valid JSON: %s (at byte %d)", se.Msg, se.Off)
	}
	env := &envelope{}
	attrs := [...]struct {
		name string
		v    **string
	}{
		{"specversion", &env.SpecVersion}, {"id", &env.ID}, {"source", &env.Source}, {"type", &env.Type},
		{"time", &env.Time}, {"subject", &env.Subject}, {"datacontenttype", &env.DataContentType},
	}
	var typeErr error
	for _, m := range members {
		switch {
		case dataMember(m.Key):
			env.Data = append(json.RawMessage(nil), b[m.Start:m.End]...)
			env.data, _ = m.Value.(map[string]any)
			continue
		case strings.EqualFold(m.Key, "data_base64"):
			env.DataBase64 = append(json.RawMessage(nil), b[m.Start:m.End]...)
			continue
		}
		a := -1
		for i := range attrs {
			if attrs[i].name == m.Key {
				a = i
				break
			}
		}
		for i := 0; a < 0 && i < len(attrs); i++ {
			if strings.EqualFold(attrs[i].name, m.Key) {
				a = i
			}
		}
		if a < 0 {
			continue
		}
		switch v := m.Value.(type) {
		case nil:
			*attrs[a].v = nil
		case string:
			env.values[a] = v
			*attrs[a].v = &env.values[a]
		default:
			if typeErr == nil {
				typeErr = invalidf("%s is %s, want a string", attrs[a].name, kind(v))
			}
		}
	}
	if typeErr != nil {
		return nil, typeErr
	}
	return env, nil
}

// Decode parses and validates one CloudEvents 1.0 structured-mode JSON
// envelope. The envelope is always checked; the data of the v1 types is also
// checked against docs/contracts.md §2, while other types get envelope checks only,
// because their routing and templates are data-driven and live elsewhere.
//
// Every error is poison: failure.ReasonDecode when b is not a JSON object at
// all (oversize, invalid UTF-8, bad syntax, trailing data) and
// failure.ReasonInvalid when it is one but fails validation. Messages name the
// offending field, quote at most a short prefix of its value, and never
// contain the payload. The returned Event shares no memory with b.
func Decode(b []byte) (*Event, error) {
	if len(b) > MaxEventSize {
		return nil, decodeErrorf("event is %d bytes, more than the %d allowed", len(b), MaxEventSize)
	}
	if !utf8.Valid(b) {
		return nil, decodeErrorf("event is not valid UTF-8")
	}
	if first(b) != '{' {
		return nil, decodeErrorf("event is not a JSON object")
	}
	env, err := envelopeOf(b)
	if err != nil {
		return nil, err
	}

	e := &Event{RawData: env.Data}
	if e.SpecVersion, err = attribute("specversion", env.SpecVersion); err != nil {
		return nil, err
	}
	if e.SpecVersion != "1.0" {
		return nil, invalidf("specversion %s is not \"1.0\"", quote(e.SpecVersion))
	}
	if e.ID, err = attribute("id", env.ID); err != nil {
		return nil, err
	}
	if err := checkID("", "id", e.ID); err != nil {
		return nil, err
	}
	if e.Source, err = attribute("source", env.Source); err != nil {
		return nil, err
	}
	if e.Type, err = attribute("type", env.Type); err != nil {
		return nil, err
	}
	if env.Time != nil {
		if e.Time, err = time.Parse(time.RFC3339, *env.Time); err != nil {
			return nil, invalidf("time %s is not an RFC 3339 time", quote(*env.Time))
		}
	}
	if env.Subject != nil {
		e.Subject = *env.Subject
	}
	if env.DataContentType != nil {
		e.DataContentType = *env.DataContentType
		if mt, _, err := mime.ParseMediaType(e.DataContentType); err != nil || mt != "application/json" {
			return nil, invalidf("datacontenttype %s is not application/json", quote(e.DataContentType))
		}
	}

	switch {
	case len(env.Data) == 0 && len(env.DataBase64) > 0:
		return nil, invalidf("data_base64 is not supported, want data as a JSON object")
	case len(env.Data) == 0:
		return nil, invalidf("data is missing")
	case first(env.Data) != '{':
		return nil, invalidf("data is %s, want an object", rawKind(env.Data))
	}
	e.Data = env.data // its text cleaned as it was parsed (dataText)

	if err := validateData(e.Type, e.Data); err != nil {
		return nil, err
	}
	return e, nil
}

// validateData checks the data of the v1 types (docs/contracts.md §2). Unknown types
// pass: they are counted and skipped, or routed by configuration, elsewhere.
func validateData(typ string, data map[string]any) error {
	switch typ {
	case BookingConfirmed, WaitlistPromoted, BookingCancelled:
		id, err := requiredString(data, "data", "booking_id")
		if err != nil {
			return err
		}
		if err := checkID("data", "booking_id", id); err != nil {
			return err
		}
		if typ == BookingCancelled {
			if _, err := optionalString(data, "data", "reason"); err != nil {
				return err
			}
		}
	case ClassReminder:
	case ClassCancelled:
		if _, err := requiredString(data, "data", "reason"); err != nil {
			return err
		}
		v := data["attendees"]
		if v == nil {
			return invalidf("data.attendees is missing")
		}
		list, ok := v.([]any)
		if !ok {
			return invalidf("data.attendees is %s, want an array of persons", kind(v))
		}
		if len(list) == 0 {
			return invalidf("data.attendees is empty")
		}
		for i, a := range list {
			if _, err := personFrom(a, "data.attendees", i); err != nil {
				return err
			}
		}
	default:
		return nil
	}

	c := data["class"]
	if c == nil {
		return invalidf("data.class is missing")
	}
	if _, err := classFrom(c, "data.class"); err != nil {
		return err
	}
	if typ != ClassCancelled {
		m := data["member"]
		if m == nil {
			return invalidf("data.member is missing")
		}
		if _, err := personFrom(m, "data.member", -1); err != nil {
			return err
		}
	}
	return nil
}

// Has reports whether the dot-separated path (e.g. "class.instructor") names
// a non-null value in the event's data. Callers use it for optional
// recipients before calling People, which treats a missing path as an error.
func (e *Event) Has(path string) bool {
	v, err := e.lookup(path)
	return err == nil && v != nil
}

// Text returns the value at the dot-separated path as text: a string as it
// is, a number as written; ok is false when the path is absent, null, or
// an object or array.
func (e *Event) Text(path string) (string, bool) {
	v, err := e.lookup(path)
	if err != nil {
		return "", false
	}
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// lookup returns the value at the dot-separated path into e.Data, nil when
// the path is absent or null, and an error when it runs through a value that
// is not an object.
func (e *Event) lookup(path string) (any, error) {
	if e == nil || path == "" {
		return nil, invalidf("data path %s is empty or has no event", quote(path))
	}
	var cur any = e.Data
	rest, walked := path, 0
	for {
		seg, tail, more := strings.Cut(rest, ".")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, invalidf("data.%s is %s, want an object", path[:walked-1], kind(cur))
		}
		cur = m[seg]
		if cur == nil || !more {
			return cur, nil
		}
		walked += len(seg) + 1
		rest = tail
	}
}

// attribute returns a required, non-empty string attribute of the envelope.
func attribute(name string, v *string) (string, error) {
	if v == nil {
		return "", invalidf("%s is missing", name)
	}
	if *v == "" {
		return "", invalidf("%s is empty", name)
	}
	return *v, nil
}

// checkID refuses an id longer than MaxIDBytes; path and key name it
// (path "" for the envelope's). They are joined only for the error: a
// path joined per call was three allocations per event.
func checkID(path, key, id string) error {
	if len(id) <= MaxIDBytes {
		return nil
	}
	if path != "" {
		key = path + "." + key
	}
	return invalidf("%s is %d bytes, at most %d", key, len(id), MaxIDBytes)
}

// requiredString returns the non-empty string m[key]; path names m in errors.
func requiredString(m map[string]any, path, key string) (string, error) {
	v := m[key]
	if v == nil {
		return "", invalidf("%s.%s is missing", path, key)
	}
	s, ok := v.(string)
	if !ok {
		return "", invalidf("%s.%s is %s, want a string", path, key, kind(v))
	}
	if s == "" {
		return "", invalidf("%s.%s is empty", path, key)
	}
	return s, nil
}

// optionalString returns the string m[key], or "" when it is absent or null.
func optionalString(m map[string]any, path, key string) (string, error) {
	v := m[key]
	if v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", invalidf("%s.%s is %s, want a string", path, key, kind(v))
	}
	return s, nil
}

// decodeErrorf reports bytes that are not a JSON object at all.
func decodeErrorf(format string, args ...any) error {
	return failure.Errorf(failure.Poison, failure.ReasonDecode, format, args...)
}

// invalidf reports a JSON object that fails validation.
func invalidf(format string, args ...any) error {
	return failure.Errorf(failure.Poison, failure.ReasonInvalid, format, args...)
}

// maxQuoted bounds how much of a value an error message repeats, so that a
// hostile or broken producer cannot make the DLQ headers or logs huge.
const maxQuoted = 64

// quote returns s as a Go string literal, cut to maxQuoted bytes.
func quote(s string) string {
	if len(s) > maxQuoted {
		n := maxQuoted
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return strconv.Quote(s)
}

// first returns the first non-space byte of b, or 0.
func first(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return c
		}
	}
	return 0
}

// kind names the JSON kind of a generically decoded value, with an article.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// rawKind names the JSON kind of a well-formed raw value, with an article.
func rawKind(b []byte) string {
	switch first(b) {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// article turns json.UnmarshalTypeError.Value ("number", "bool", ...) into
// the words kind uses.
func article(v string) string {
	switch v {
	case "number", "bool", "string":
		if v == "bool" {
			v = "boolean"
		}
		return "a " + v
	case "array", "object":
		return "an " + v
	}
	return v
}
