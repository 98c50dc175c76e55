package templates

import (
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gymhq/herald/notification"
)

// view is what a render's templates read: the notification's data, which
// the render never modifies, and over it the render-time values. Those are
// the derived keys, each present only where the data lacks it, and the
// values fitSMS shortens, which replace the data's. Reading through the
// view instead of a copy of the data saves copying every key of every
// notification (and clearing the copy), and a derived key is worked out
// only when a template reads it (derive).
type view struct {
	data notification.Data
	idx  dataIndex   // finds data's keys
	loc  *localeData // names and layouts of derived dates and times
	zone *time.Location
	over []pair
	// merged is data with every derived key and over applied, for a part
	// the template package executes (it reads a map); built when first
	// needed after a change.
	merged      map[string]string
	mergedValid bool
}

type pair struct{ k, v string }

// fill makes v a view of data whose derived dates and times are formatted
// with the layouts and names of loc.
func (v *view) fill(data notification.Data, loc *localeData) {
	v.data, v.loc = data, loc
	v.idx.build(data.Fields())
}

// lookup is data's value of k and whether it has k.
func (v *view) lookup(k string) (string, bool) { return v.idx.lookup(v.data, k) }

// get is the value of k and whether it is present: set over the data, the
// data, then a derived key.
func (v *view) get(k string) (string, bool) {
	for i := range v.over {
		if v.over[i].k == k {
			return v.over[i].v, true
		}
	}
	if s, ok := v.lookup(k); ok {
		return s, true
	}
	return v.derive(k)
}

// at is the value of k, "" when absent (a map's index).
func (v *view) at(k string) string {
	s, _ := v.get(k)
	return s
}

// set makes k's value s, over the data's.
func (v *view) set(k, s string) {
	if v.mergedValid {
		v.merged[k] = s // fitSMS sets a key per step: no rebuild
	}
	for i := range v.over {
		if v.over[i].k == k {
			v.over[i].v = s
			return
		}
	}
	v.over = append(v.over, pair{k, s})
}

// Derived keys (README.md, "Derived at render time"): for every key
// <p>_starts_at of the data holding an RFC 3339 time, <p>_date and
// <p>_start_time, and with <p>_ends_at also <p>_end_time and
// <p>_duration_minutes; all in local_time_zone, which is derived too.
// Derived keys never replace keys of the data: derive is asked only for a
// key the data lacks.
const (
	derivedDate      = "date"
	derivedStartTime = "start_time"
	derivedEndTime   = "end_time"
	derivedDuration  = "duration_minutes"
)

// derive works out derived key k, keeps it (and, for a time, the other
// values of its prefix) over the data, and returns it; false when k is not
// a derived key of this data.
func (v *view) derive(k string) (string, bool) {
	if k == "local_time_zone" {
		s := v.localZone().String()
		v.over = append(v.over, pair{k, s}) // asMap has it already: merged stays valid
		return s, true
	}
	var prefix string
	found := false
	for _, suffix := range [...]string{derivedDate, derivedStartTime, derivedEndTime, derivedDuration} {
		if p, ok := cutDerived(k, suffix); ok {
			prefix, found = p, true
			break
		}
	}
	if !found {
		return "", false
	}
	t, keys := v.timesOf(prefix)
	if t == nil {
		return "", false
	}
	var s string
	found = false // an end time or duration without an end stays absent
	t.each(keys, func(dk, ds string) {
		v.addDerived(dk, ds)
		if dk == k {
			s, found = ds, true
		}
	})
	return s, found
}

// cutDerived returns the prefix of k, a derived key of kind suffix: ""
// or a prefix ending in "_" (class_date → class_).
func cutDerived(k, suffix string) (string, bool) {
	p, ok := strings.CutSuffix(k, suffix)
	return p, ok && (p == "" || strings.HasSuffix(p, "_"))
}

// timesOf is the derived times of <prefix>starts_at, nil when the data has
// no such time.
func (v *view) timesOf(prefix string) (*derivedTimes, *derivedKeys) {
	keys := derivedKeysOf(prefix)
	start, ok := v.lookup(keys.startsAt)
	if !ok {
		return nil, nil
	}
	end, _ := v.lookup(keys.endsAt)
	t := derivedTimesOf(start, end, v.localZone(), v.loc)
	if !t.startOK {
		return nil, nil
	}
	return t, keys
}

// addDerived adds derived key k unless the data or over has it.
func (v *view) addDerived(k, s string) {
	if _, ok := v.lookup(k); ok {
		return
	}
	for i := range v.over {
		if v.over[i].k == k {
			return
		}
	}
	v.over = append(v.over, pair{k, s})
}

// localZone is where times are shown to this recipient (localZone), read
// once per render.
func (v *view) localZone() *time.Location {
	if v.zone == nil {
		v.zone = localZone(v.lookup)
	}
	return v.zone
}

// asMap is the view as one map, every derived key included, for the
// template package. It is the view's own and valid until the next set.
// Derived values go into the map, not over, so building it is linear in
// the data however many times it has.
func (v *view) asMap() map[string]string {
	if v.mergedValid {
		return v.merged
	}
	if v.merged == nil {
		v.merged = make(map[string]string, v.data.Len()+len(v.over)+1)
	}
	m := v.merged
	clear(m)
	for _, f := range v.data.Fields() {
		m[f.Key] = f.Value
	}
	put := func(k, s string) {
		if _, ok := m[k]; !ok {
			m[k] = s
		}
	}
	put("local_time_zone", v.localZone().String())
	for _, f := range v.data.Fields() {
		p, ok := cutDerived(f.Key, "starts_at")
		if !ok {
			continue
		}
		if t, keys := v.timesOf(p); t != nil {
			t.each(keys, put)
		}
	}
	for _, p := range v.over {
		m[p.k] = p.v // set values, and derived ones (the same)
	}
	v.mergedValid = true
	return m
}

// reset empties v for reuse, dropping its references to the data.
func (v *view) reset() {
	v.data, v.loc, v.zone = notification.Data{}, nil, nil
	v.idx.reset()
	if cap(v.over) > maxPooledOver {
		v.over = make([]pair, 0, 8)
	} else {
		clear(v.over)
		v.over = v.over[:0]
	}
	if v.merged != nil {
		if len(v.merged) > maxPooledMerged {
			v.merged = nil
		} else {
			clear(v.merged)
		}
	}
	v.mergedValid = false
}

// maxPooledMerged bounds the merged map a pooled view keeps: maps never
// shrink, and an unusually large notification's would be cleared by every
// later render that needs one.
const maxPooledMerged = 256

// maxPooledOver bounds the render-time values a pooled view keeps room
// for, for the same reason.
const maxPooledOver = 64

var viewPool = sync.Pool{New: func() any { return &view{over: make([]pair, 0, 8)} }}

// derivedTimes are the values derive works out from one pair of start and end
// times in a zone and language. Every notification of a class derives the
// same ones, so they are cached (derivedTimesOf).
type derivedTimes struct {
	// The raw values and the zone's name, copies (never a record's
	// substrings), and the language. The zone is known by its name: once
	// zoneCache is full, every load of a zone is a new Location, and a
	// slot holds no Location either.
	start, end, zone string
	loc              *localeData

	startOK, endOK    bool
	date, startTime   string
	endTime, duration string
}

// each calls f with every derived key of keys that t has a value for, and
// the value: the date and start time, and with an end the end time and
// duration.
func (t *derivedTimes) each(keys *derivedKeys, f func(k, s string)) {
	f(keys.date, t.date)
	f(keys.startTime, t.startTime)
	if t.endOK {
		f(keys.endTime, t.endTime)
		f(keys.duration, t.duration)
	}
}

// derivedTimesOf derives the values of start and end (end may be absent,
// ""), or returns the cached ones. The cache is direct-mapped and bounded:
// a slot holds the last pair that hashed to it, so a burst of one class's
// notifications finds its values and the cache never grows.
func derivedTimesOf(start, end string, zone *time.Location, loc *localeData) *derivedTimes {
	name := zone.String()
	slot := &derivedCache[derivedSlot(start, end, name, loc)]
	if t := slot.Load(); t != nil && t.start == start && t.end == end && t.zone == name && t.loc == loc {
		return t
	}
	t := deriveTimes(strings.Clone(start), strings.Clone(end), zone, loc)
	slot.Store(t)
	return t
}

// derivedSlot is the index of the slot of derivedCache for these values.
func derivedSlot(start, end, zone string, loc *localeData) uint64 {
	var h maphash.Hash
	h.SetSeed(derivedSeed)
	h.WriteString(start)
	h.WriteByte(0)
	h.WriteString(end)
	h.WriteByte(0)
	h.WriteString(zone)
	h.WriteByte(0)
	h.WriteString(loc.Date) // languages apart: most differ in their layouts
	h.WriteString(loc.Time)
	return h.Sum64() % uint64(len(derivedCache))
}

func deriveTimes(start, end string, zone *time.Location, loc *localeData) *derivedTimes {
	t := &derivedTimes{start: start, end: end, zone: strings.Clone(zone.String()), loc: loc}
	s, ok := timeIn(start, zone)
	if !ok {
		return t
	}
	t.startOK = true
	t.date = loc.format(s, loc.Date)
	t.startTime = loc.format(s, loc.Time)
	e, ok := timeIn(end, zone)
	if !ok {
		return t
	}
	t.endOK = true
	t.endTime = loc.format(e, loc.Time)
	t.duration = strconv.Itoa(int(e.Sub(s) / time.Minute))
	return t
}

// timeIn parses RFC 3339 value v and shows it in zone.
func timeIn(v string, zone *time.Location) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, v)
	return t.In(zone), err == nil
}

var (
	derivedSeed  = maphash.MakeSeed()
	derivedCache [4096]atomic.Pointer[derivedTimes]
)
