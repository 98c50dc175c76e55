package prefs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"
	_ "time/tzdata" // people's zones must load on images without /usr/share/zoneinfo

	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

// MaxBodyBytes bounds a patch: every category × channel with room to
// spare is a few hundred bytes.
const MaxBodyBytes = 16 << 10

// Errors a change can be refused with. Every error of DecodePatch,
// Validate and Change that is the input's fault is an *Error matching one.
var (
	// ErrInvalid is input that is malformed or names what does not exist
	// (HTTP 400).
	ErrInvalid = errors.New("prefs: invalid")
	// ErrRequired is a change that would switch a required category off
	// on every channel (HTTP 422).
	ErrRequired = errors.New("prefs: a required category would be switched off entirely")
)

// Error is a refused input: Field is where ("categories.marketing.fax",
// "quiet_hours.from"; "" for the body as a whole), Text the whole message,
// which names the field.
type Error struct {
	Field    string
	Text     string
	required bool
}

func (e *Error) Error() string { return e.Text }

// Is matches ErrInvalid, or ErrRequired for a required category switched
// off entirely.
func (e *Error) Is(target error) bool {
	if e.required {
		return target == ErrRequired
	}
	return target == ErrInvalid
}

func invalid(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if field == "" {
		return &Error{Text: msg}
	}
	return &Error{Field: field, Text: field + ": " + msg}
}

// QuietHours is a person's own quiet window, in their time zone: From and
// To are minutes after local midnight (From > To spans midnight). Off is
// "no quiet hours at all", even in categories that have some by default.
// Its JSON is "off" or {"from":"23:00","to":"06:30"}.
type QuietHours struct {
	Off      bool
	From, To int
}

// String is the window as herald trace and logs show it: "23:00-06:30"
// or "off".
func (q QuietHours) String() string {
	if q.Off {
		return "off"
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d", q.From/60, q.From%60, q.To/60, q.To%60)
}

// MarshalJSON writes "off" or {"from","to"}.
func (q QuietHours) MarshalJSON() ([]byte, error) {
	if q.Off {
		return []byte(`"off"`), nil
	}
	return fmt.Appendf(nil, `{"from":"%02d:%02d","to":"%02d:%02d"}`, q.From/60, q.From%60, q.To/60, q.To%60), nil
}

// UnmarshalJSON reads what MarshalJSON writes, as strictly as a patch.
func (q *QuietHours) UnmarshalJSON(b []byte) error {
	v, err := decodeQuiet(b, "quiet_hours")
	if err != nil {
		return err
	}
	if v == nil {
		return invalid("quiet_hours", `must be "off" or {"from":"HH:MM","to":"HH:MM"}`)
	}
	*q = *v
	return nil
}

var (
	channelNameRE  = regexp.MustCompile(`^[a-z][a-z0-9]{1,15}$`)
	categoryNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	// zoneRE is the shape of IANA names ("America/Argentina/Buenos_Aires",
	// "Etc/GMT+5"), checked before the name reaches the zone database.
	zoneRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+/-]{0,63}$`)
	plainRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
)

// DecodePatch reads a PUT /v1/preferences body: a JSON object of at most
// MaxBodyBytes with the keys channels, categories, quiet_hours and
// time_zone, each optional; every value true, false, or null to remove.
// The read-only keys of the answer (required, descriptions) are accepted
// and ignored, so that a client may send back what it was given. Unknown
// keys, keys given twice, values of the wrong type and trailing data are
// refused with an *Error naming the field. Whether the channels and
// categories named exist is Validate's question.
func DecodePatch(b []byte) (*Patch, error) {
	if len(b) > MaxBodyBytes {
		return nil, invalid("", "the body is over %d bytes", MaxBodyBytes)
	}
	ms, err := members(b, "")
	if err != nil {
		return nil, err
	}
	p := &Patch{}
	for _, m := range ms {
		switch m.key {
		case "channels":
			if isNull(m.val) {
				p.ResetChannels = true
				continue
			}
			if p.Channels, err = channelChoices(m.val, "channels"); err != nil {
				return nil, err
			}
		case "categories":
			if isNull(m.val) {
				p.ResetCategories = true
				continue
			}
			cats, err := members(m.val, "categories")
			if err != nil {
				return nil, err
			}
			p.Categories = map[string]map[notification.Channel]*bool{}
			for _, c := range cats {
				field := path("categories", c.key)
				if !categoryNameRE.MatchString(c.key) {
					return nil, invalid(field, "is not a category name (lower-case letters, digits and _)")
				}
				if isNull(c.val) {
					p.Categories[c.key] = nil
					continue
				}
				if p.Categories[c.key], err = channelChoices(c.val, field); err != nil {
					return nil, err
				}
			}
		case "quiet_hours":
			p.QuietSet = true
			if p.Quiet, err = decodeQuiet(m.val, "quiet_hours"); err != nil {
				return nil, err
			}
		case "time_zone":
			p.ZoneSet = true
			if isNull(m.val) {
				continue
			}
			var s string
			if json.Unmarshal(m.val, &s) != nil {
				return nil, invalid("time_zone", "must be an IANA time zone name (Europe/London) or null")
			}
			if err := checkZone(s); err != nil {
				return nil, err
			}
			p.Zone = s
		case "required", "descriptions":
			// GET's read-only keys: sent back, they change nothing.
		default:
			return nil, invalid(path("", m.key), "is not a preference (want channels, categories, quiet_hours or time_zone)")
		}
	}
	return p, nil
}

// checkZone accepts an IANA zone name the zone database knows.
func checkZone(s string) error {
	if !zoneRE.MatchString(s) || s == "Local" {
		return invalid("time_zone", "%q is not an IANA time zone name (Europe/London, America/New_York, UTC)", clip(s))
	}
	if _, err := time.LoadLocation(s); err != nil {
		return invalid("time_zone", "%q is not a time zone the zone database knows", s)
	}
	return nil
}

// channelChoices reads {"email":true,"sms":null,…}.
func channelChoices(raw json.RawMessage, field string) (map[notification.Channel]*bool, error) {
	ms, err := members(raw, field)
	if err != nil {
		return nil, err
	}
	out := make(map[notification.Channel]*bool, len(ms))
	for _, m := range ms {
		f := path(field, m.key)
		if !channelNameRE.MatchString(m.key) {
			return nil, invalid(f, "is not a channel (%s)", channelList())
		}
		v, err := boolOrNull(m.val, f)
		if err != nil {
			return nil, err
		}
		out[notification.Channel(m.key)] = v
	}
	return out, nil
}

// decodeQuiet reads "off", {"from","to"}, or null (nil).
func decodeQuiet(raw json.RawMessage, field string) (*QuietHours, error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "off" {
			return &QuietHours{Off: true}, nil
		}
		return nil, invalid(field, `must be "off", {"from":"HH:MM","to":"HH:MM"} or null`)
	}
	ms, err := members(raw, field)
	if err != nil {
		return nil, invalid(field, `must be "off", {"from":"HH:MM","to":"HH:MM"} or null`)
	}
	q := &QuietHours{}
	var seen int
	for _, m := range ms {
		f := path(field, m.key)
		var dst *int
		switch m.key {
		case "from":
			dst = &q.From
		case "to":
			dst = &q.To
		default:
			return nil, invalid(f, "is not part of quiet hours (want from and to)")
		}
		var t string
		if json.Unmarshal(m.val, &t) != nil {
			return nil, invalid(f, "must be a time of day HH:MM")
		}
		min, err := templates.ParseClock(t)
		if err != nil {
			return nil, invalid(f, "%q is not a time of day HH:MM (00:00 to 23:59)", clip(t))
		}
		*dst = min
		seen++
	}
	if seen != 2 {
		return nil, invalid(field, "needs both from and to")
	}
	if q.From == q.To {
		return nil, invalid(field, `from and to are the same time; write "off" for no quiet hours`)
	}
	return q, nil
}

func boolOrNull(raw json.RawMessage, field string) (*bool, error) {
	switch string(bytes.TrimSpace(raw)) {
	case "null":
		return nil, nil
	case "true":
		v := true
		return &v, nil
	case "false":
		v := false
		return &v, nil
	}
	return nil, invalid(field, "must be true, false or null")
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

type member struct {
	key string
	val json.RawMessage
}

// members reads raw as one JSON object, in order, refusing a key given
// twice and anything after the object.
func members(raw []byte, field string) ([]member, error) {
	what := "the body"
	if field != "" {
		what = "it"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if d, ok := tok.(json.Delim); err != nil || !ok || d != '{' {
		return nil, invalid(field, "%s must be a JSON object", what)
	}
	var out []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid(field, "%s is not valid JSON: %v", what, err)
		}
		key, _ := tok.(string)
		f := path(field, key)
		if seen[key] {
			return nil, invalid(f, "is given twice")
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, invalid(f, "is not valid JSON: %v", err)
		}
		out = append(out, member{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalid(field, "%s is not valid JSON: %v", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid(field, "%s has data after its end", what)
	}
	return out, nil
}

// path names key below field in messages: categories.marketing.email, or
// a quoted key where it is not a plain name.
func path(field, key string) string {
	k := key
	if !plainRE.MatchString(key) {
		k = strconv.Quote(clip(key))
	}
	if field == "" {
		return k
	}
	return field + "." + k
}

// clip keeps what an error quotes of the input short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func channelList() string {
	var b []byte
	for i, c := range Channels() {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, c...)
	}
	return string(b)
}
