package templates

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
)

// The flat template data is the contract with template authors (see
// README.md): string keys, string values, no Go types. Plan builds the part
// that travels on Kafka; Render adds values derived for the recipient's time
// zone and language.

// flatten turns event data into flat keys: nested objects are joined with
// "_" (class.instructor.name → class_instructor_name), strings are kept,
// numbers keep their JSON text, booleans become "true"/"false". Arrays and
// nulls are skipped (recipients appear as recipient_*), and so are objects
// named "preferences", which steer routing and are not copy. When two paths
// flatten to the same key, the shallower one wins, so data cannot shadow a
// top-level field by nesting.
//
// The fields have room for extra more without growing. Objects are walked
// breadth first, so the first path to claim a key is no deeper than any
// later one, and it keeps the key. Joined keys are written into one buffer
// and cut from one string made of it, rather than concatenated one
// allocation each. The fields are made once per event and sorted once,
// into the order every notification's encoding writes them in.
func flatten(data map[string]any, extra int) []notification.Field {
	// An object's prefix and a joined key are spans of buf; an empty
	// prefix (the top level, or keys "") joins nothing.
	type span struct{ start, end int }
	type object struct {
		prefix span
		m      map[string]any
	}
	type value struct {
		key    string // the key, when joined is empty
		joined span
		s      string
	}
	var (
		bufArray   [512]byte
		queueArray [8]object
		valueArray [64]value // few events have more; avoid allocating
	)
	buf := bufArray[:0]
	objects := append(queueArray[:0], object{m: data})
	values := valueArray[:0]
	join := func(prefix span, k string) span {
		start := len(buf)
		buf = append(buf, buf[prefix.start:prefix.end]...)
		buf = append(buf, '_')
		buf = append(buf, k...)
		return span{start, len(buf)}
	}
	for i := 0; i < len(objects); i++ {
		o := objects[i]
		for k, v := range o.m {
			var s string
			switch v := v.(type) {
			case string:
				s = v
			case json.Number:
				s = v.String()
			case float64:
				s = strconv.FormatFloat(v, 'f', -1, 64)
			case bool:
				s = strconv.FormatBool(v)
			case map[string]any:
				if k == "preferences" {
					continue
				}
				var prefix span
				if o.prefix.start == o.prefix.end {
					prefix.start = len(buf)
					buf = append(buf, k...)
					prefix.end = len(buf)
				} else {
					prefix = join(o.prefix, k)
				}
				objects = append(objects, object{prefix, v})
				continue
			default: // nil, arrays
				continue
			}
			if o.prefix.start == o.prefix.end {
				values = append(values, value{key: k, s: s})
			} else {
				values = append(values, value{joined: join(o.prefix, k), s: s})
			}
		}
	}
	keys := string(buf)
	out := make([]notification.Field, len(values), len(values)+extra)
	// Last first: notification.NewData keeps the last of equal keys,
	// and the first claim (the shallowest path) must win.
	for i, v := range values {
		key := v.key
		if v.joined.start != v.joined.end {
			key = keys[v.joined.start:v.joined.end]
		}
		out[len(values)-1-i] = notification.Field{Key: key, Value: v.s}
	}
	return out
}

// eventData is the data every notification of an event shares: the flattened
// event data plus event_id, event_type and event_time, which win over data
// fields of the same name.
func eventData(ev *events.Event) notification.Data {
	fs := flatten(ev.Data, 3)
	fs = append(fs, notification.Field{Key: "event_id", Value: ev.ID}, notification.Field{Key: "event_type", Value: ev.Type})
	if !ev.Time.IsZero() {
		fs = append(fs, notification.Field{Key: "event_time", Value: ev.Time.UTC().Format(time.RFC3339)})
	} else {
		// Herald's key wins here too: an event without a time has
		// none, whatever its data says. The scheduler orders a
		// notification's cancellations by it (schedule.Record.EventTime),
		// and a data field of that name in an untimed event kept its
		// booking's reminder from the booking's cancellation (an outside
		// review).
		fs = slices.DeleteFunc(fs, func(f notification.Field) bool { return f.Key == "event_time" })
	}
	return notification.NewData(fs)
}

// recipientData is base with recipient_* for p. Every recipient_* key is
// present, empty when the person has no such field, so templates can write
// {{with .recipient_first_name}} or {{default "there" ...}} rather than
// fail for a member without a name. Push tokens and preferences are never
// copied: tokens are addresses, not copy.
func recipientData(base notification.Data, p *events.Person) notification.Data {
	// In key order, which With then merges without sorting.
	return base.With(
		notification.Field{Key: "recipient_email", Value: p.Email},
		notification.Field{Key: "recipient_first_name", Value: firstName(p.Name)},
		notification.Field{Key: "recipient_id", Value: p.ID},
		notification.Field{Key: "recipient_locale", Value: p.Locale},
		notification.Field{Key: "recipient_name", Value: p.Name},
		notification.Field{Key: "recipient_phone", Value: p.Phone},
		notification.Field{Key: "recipient_time_zone", Value: p.TimeZone},
	)
}

// firstName is the first of strings.Fields(name), "" for none, without
// building the slice.
func firstName(name string) string {
	first := strings.TrimLeftFunc(name, unicode.IsSpace)
	if i := strings.IndexFunc(first, unicode.IsSpace); i >= 0 {
		first = first[:i]
	}
	return first
}

// derivedKeys are the keys of one <p>_starts_at and those derived from it.
type derivedKeys struct {
	startsAt, date, startTime, endsAt, endTime, duration string
}

// derivedKeysOf returns the derived keys of prefix p, which is "" or ends
// with "_" (p+"date", …), built once per prefix: renders derive class_*
// keys for most notifications. Like zoneCache, the cache holds a bounded
// number of prefixes, since they come from event data.
func derivedKeysOf(prefix string) *derivedKeys {
	if v, ok := derivedKeyCache.Load(prefix); ok {
		return v.(*derivedKeys)
	}
	k := &derivedKeys{
		startsAt:  prefix + "starts_at",
		date:      prefix + "date",
		startTime: prefix + "start_time",
		endsAt:    prefix + "ends_at",
		endTime:   prefix + "end_time",
		duration:  prefix + "duration_minutes",
	}
	if derivedKeyCacheSize.Add(1) <= maxDerivedPrefixes {
		derivedKeyCache.Store(strings.Clone(prefix), k) // copies: keys may be substrings of a whole record
	}
	return k
}

var (
	derivedKeyCache     sync.Map // prefix → *derivedKeys
	derivedKeyCacheSize atomic.Int64
)

// maxDerivedPrefixes bounds derivedKeyCache.
const maxDerivedPrefixes = 64

// localZone is where times are shown to this recipient: their own zone,
// else the class's, else a top-level time_zone, else UTC. A name that does
// not load is passed over rather than failing the message: the next zone in
// line is still a truthful place to show the time in.
func localZone(lookup func(string) (string, bool)) *time.Location {
	for _, k := range [...]string{"recipient_time_zone", "class_time_zone", "time_zone"} {
		if name, ok := lookup(k); ok && name != "" {
			if z := loadZone(name); z != nil {
				return z
			}
		}
	}
	return time.UTC
}

// loadZone caches time.LoadLocation, which reads the zone database on every
// call.
func loadZone(name string) *time.Location {
	if v, ok := zoneCache.Load(name); ok {
		return v.(*time.Location)
	}
	// A copy: name may be a substring of a whole record, and both the
	// cache's key and the Location (its String) keep the name.
	name = strings.Clone(name)
	z, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		z = nil
	}
	if zoneCacheSize.Add(1) <= maxCachedZones {
		zoneCache.Store(name, z)
	}
	return z
}

const maxCachedZones = 1024

var (
	zoneCache     sync.Map // string → *time.Location (nil: does not load)
	zoneCacheSize atomic.Int64
)
