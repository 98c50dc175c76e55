package events

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/text/language"
)

// People returns the validated persons at the dot-separated path into the
// event's data ("member", "attendees", "class.instructor"). The value there
// may be one person object or an array of them. A missing or null path is an
// error naming it; check Has first when the recipient is optional.
//
// Persons are read straight from Data rather than by re-encoding it, so the
// hot path decodes the payload once; Data is not modified.
func (e *Event) People(path string) ([]Person, error) {
	v, err := e.lookup(path)
	if err != nil {
		return nil, err
	}
	at := "data." + path
	switch v := v.(type) {
	case nil:
		return nil, invalidf("%s is missing", at)
	case map[string]any:
		p, err := personFrom(v, at, -1)
		if err != nil {
			return nil, err
		}
		return []Person{p}, nil
	case []any:
		ps := make([]Person, 0, len(v))
		for i, x := range v {
			p, err := personFrom(x, at, i)
			if err != nil {
				return nil, err
			}
			ps = append(ps, p)
		}
		return ps, nil
	default:
		return nil, invalidf("%s is %s, want a person or an array of persons", at, kind(v))
	}
}

// Class returns the event's data.class, validated as Decode validates it.
func (e *Event) Class() (*Class, error) {
	v, err := e.lookup("class")
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, invalidf("data.class is missing")
	}
	return classFrom(v, "data.class")
}

// personFrom converts and validates a generically decoded person. path names
// it in errors; index >= 0 means it is element index of the array at path
// (the element path is only formatted when there is an error to report).
//
// Optional fields that are absent, null or "" are left empty: producers use
// all three for "none", and channels treat an empty field as no address.
//
// Addresses (email, phone, push tokens) are only checked to be strings
// here, not checked for shape: a malformed address costs its own message,
// which the dispatcher refuses per recipient (package address), not the
// whole event and every other recipient with it.
func personFrom(v any, path string, index int) (Person, error) {
	if index >= 0 {
		path += "[" + strconv.Itoa(index) + "]"
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Person{}, invalidf("%s is %s, want an object", path, kind(v))
	}
	var p Person
	var err error
	if p.ID, err = requiredString(m, path, "id"); err != nil {
		return Person{}, err
	}
	if err := checkID(path, "id", p.ID); err != nil {
		return Person{}, err
	}
	if p.Name, err = optionalString(m, path, "name"); err != nil {
		return Person{}, err
	}
	if p.Email, err = optionalString(m, path, "email"); err != nil {
		return Person{}, err
	}
	if p.Phone, err = optionalString(m, path, "phone"); err != nil {
		return Person{}, err
	}
	if p.Locale, err = optionalString(m, path, "locale"); err != nil {
		return Person{}, err
	}
	if p.Locale != "" {
		if !validLocale(p.Locale) {
			return Person{}, invalidf("%s.locale %s is not a BCP 47 language tag", path, quote(p.Locale))
		}
	}
	if p.TimeZone, err = optionalString(m, path, "time_zone"); err != nil {
		return Person{}, err
	}
	if p.TimeZone != "" {
		if _, err := location(p.TimeZone); err != nil {
			return Person{}, invalidf("%s.time_zone %s is not an IANA time zone", path, quote(p.TimeZone))
		}
	}
	if p.PushTokens, err = pushTokens(m["push_tokens"], path); err != nil {
		return Person{}, err
	}
	if p.Preferences, err = preferences(m["preferences"], path); err != nil {
		return Person{}, err
	}
	return p, nil
}

// pushTokens returns the person's tokens, each required to be a string;
// their shape is checked per address at planning (package address).
func pushTokens(v any, path string) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, invalidf("%s.push_tokens is %s, want an array of strings", path, kind(v))
	}
	if len(list) == 0 {
		return nil, nil
	}
	tokens := make([]string, len(list))
	for i, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, invalidf("%s.push_tokens[%d] is %s, want a string", path, i, kind(x))
		}
		tokens[i] = s
	}
	return tokens, nil
}

// preferences requires every value to be a boolean, known channel or not: a
// string "false" silently read as "absent, so on" would message someone who
// opted out.
func preferences(v any, path string) (Preferences, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidf("%s.preferences is %s, want an object of booleans", path, kind(v))
	}
	var bad string // the smallest bad key, so the message does not depend on map order
	for k, x := range m {
		if _, ok := x.(bool); !ok && (bad == "" || k < bad) {
			bad = k
		}
	}
	if bad != "" {
		return nil, invalidf("%s.preferences.%s is %s, want a boolean", path, bad, kind(m[bad]))
	}
	p := make(Preferences, len(m))
	for k, x := range m {
		p[k] = x.(bool)
	}
	return p, nil
}

// classFrom converts and validates a generically decoded class.
func classFrom(v any, path string) (*Class, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidf("%s is %s, want an object", path, kind(v))
	}
	c := &Class{}
	var err error
	if c.ID, err = requiredString(m, path, "id"); err != nil {
		return nil, err
	}
	if err := checkID(path, "id", c.ID); err != nil {
		return nil, err
	}
	if c.Name, err = requiredString(m, path, "name"); err != nil {
		return nil, err
	}
	starts, err := requiredString(m, path, "starts_at")
	if err != nil {
		return nil, err
	}
	if c.StartsAt, err = time.Parse(time.RFC3339, starts); err != nil {
		return nil, invalidf("%s.starts_at %s is not an RFC 3339 time", path, quote(starts))
	}
	ends, err := requiredString(m, path, "ends_at")
	if err != nil {
		return nil, err
	}
	if c.EndsAt, err = time.Parse(time.RFC3339, ends); err != nil {
		return nil, invalidf("%s.ends_at %s is not an RFC 3339 time", path, quote(ends))
	}
	if !c.EndsAt.After(c.StartsAt) {
		return nil, invalidf("%s.ends_at %s is not after starts_at %s", path, quote(ends), quote(starts))
	}
	if c.TimeZone, err = requiredString(m, path, "time_zone"); err != nil {
		return nil, err
	}
	if _, err := location(c.TimeZone); err != nil {
		return nil, invalidf("%s.time_zone %s is not an IANA time zone", path, quote(c.TimeZone))
	}
	if c.Location, err = optionalString(m, path, "location"); err != nil {
		return nil, err
	}
	if c.Capacity, err = count(m, path, "capacity"); err != nil {
		return nil, err
	}
	if c.Booked, err = count(m, path, "booked"); err != nil {
		return nil, err
	}
	if in := m["instructor"]; in != nil {
		p, err := personFrom(in, path+".instructor", -1)
		if err != nil {
			return nil, err
		}
		c.Instructor = &p
	}
	return c, nil
}

// count returns the optional non-negative integer m[key], 0 when absent.
func count(m map[string]any, path, key string) (int, error) {
	v := m[key]
	if v == nil {
		return 0, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, invalidf("%s.%s is %s, want a number", path, key, kind(v))
	}
	i, err := strconv.Atoi(string(n))
	if err != nil || i < 0 {
		return 0, invalidf("%s.%s %s is not a non-negative whole number", path, key, quote(string(n)))
	}
	return i, nil
}

var errZoneName = errors.New("not an IANA time zone name")

// Locales that parsed, cached like zones: language.Parse was 9% of Decode,
// for the few locales every event repeats. Only well-formed tags are kept,
// at most maxZones of them, each a copy: a tag decoded from an event may be a
// substring of the whole event, which the cache would otherwise keep alive.
var (
	locales     sync.Map // string -> struct{}
	localeCount atomic.Int32
)

// validLocale reports whether s is a well-formed BCP 47 tag. A tag whose
// subtags no registry knows ("zz", "zz-ZZ") is well-formed: language.Parse
// says so with a ValueError, and the templates fall back to English for it.
// Refusing it would dead-letter the whole event, every recipient's messages
// for one person's locale.
func validLocale(s string) bool {
	if _, ok := locales.Load(s); ok {
		return true
	}
	if _, err := language.Parse(s); err != nil {
		if _, unknown := err.(language.ValueError); !unknown {
			return false
		}
	}
	if localeCount.Load() < maxZones {
		if _, loaded := locales.LoadOrStore(strings.Clone(s), struct{}{}); !loaded {
			localeCount.Add(1)
		}
	}
	return true
}

// Zones that loaded, by name. time.LoadLocation reads and parses tzdata on
// every call, far too slow for every person of every event, so successes are
// cached. Only names made of IANA characters that loaded are kept, and at most
// maxZones of them, so hostile input cannot grow the cache without bound.
var (
	zones     sync.Map // string -> *time.Location
	zoneCount atomic.Int32
)

const maxZones = 2048

// location loads an IANA zone. It refuses "Local", which would mean this
// server's zone, and names that are not spelled like IANA names (LoadLocation
// alone would accept "Europe//London" or "Europe/./London" via the file
// system).
func location(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	if name == "Local" || !isZoneName(name) {
		return nil, errZoneName
	}
	name = strings.Clone(name) // the cache's key and the Location keep it: not a substring of the event
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	if zoneCount.Load() < maxZones {
		if _, loaded := zones.LoadOrStore(name, l); !loaded {
			zoneCount.Add(1)
		}
	}
	return l, nil
}

// isZoneName reports whether name is '/'-separated non-empty parts of ASCII
// letters, digits, '_', '-' and '+', the alphabet of the tz database, with no
// part starting with '.' or '-'.
func isZoneName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	start := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '/':
			if start {
				return false
			}
			start = true
			continue
		case c == '-' && start:
			return false
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '+':
		default:
			return false
		}
		start = false
	}
	return !start
}
