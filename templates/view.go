package templates

import (
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// view is what a render's templates read: the notification's data, which
// the render never modifies, and over it the render-time values. Those are
// the derived keys, each present only where the data lacks it, and the
// values fitSMS shortens, which replace the data's. Reading through the
// view instead of a copy of the data saves copying every key of every
// notification (and clearing the copy), and a derived key is worked out
// only when a template reads it (derive).
type view struct {
	data map[string]string
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

// viewOf is a view of d with no render-time values.
func viewOf(d map[string]string) *view { return &view{data: d, loc: english} }

// fill makes v a view of data whose derived dates and times are formatted
// with the layouts and names of loc.
func (v *view) fill(data map[string]string, loc *localeData) {
	v.data, v.loc = data, loc
}

// get is the value of k and whether it is present: set over the data, the
// data, then a derived key.
func (v *view) get(k string) (string, bool) {
	for i := range v.over {
		if v.over[i].k == k {
			return v.over[i].v, true
		}
	}
	if s, ok := v.data[k]; ok {
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
	v.mergedValid = false
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
		v.over = append(v.over, pair{k, s})
		v.mergedValid = false
		return s, true
	}
	var prefix string
	found := false
	for _, suffix := range [...]string{derivedDate, derivedStartTime, derivedEndTime, derivedDuration} {
		if p, ok := strings.CutSuffix(k, suffix); ok && (p == "" || strings.HasSuffix(p, "_")) {
			prefix, found = strings.TrimSuffix(p, "_"), true
			break
		}
	}
	if !found {
		return "", false
	}
	if !v.derivePrefix(prefix) {
		return "", false
	}
	for i := len(v.over) - 1; i >= 0; i-- {
		if v.over[i].k == k {
			return v.over[i].v, true
		}
	}
	return "", false // an end time or duration without an end
}

// derivePrefix keeps the derived keys of <prefix>_starts_at over the data;
// false when the data has no such time.
func (v *view) derivePrefix(prefix string) bool {
	keys := derivedKeysOf(prefix)
	start, ok := v.data[keys.startsAt]
	if !ok {
		return false
	}
	t := derivedTimesOf(start, v.data[keys.endsAt], v.localZone(), v.loc)
	if !t.startOK {
		return false
	}
	v.mergedValid = false
	v.addDerived(keys.date, t.date)
	v.addDerived(keys.startTime, t.startTime)
	if t.endOK {
		v.addDerived(keys.endTime, t.endTime)
		v.addDerived(keys.duration, t.duration)
	}
	return true
}

// addDerived adds derived key k unless the data or over has it.
func (v *view) addDerived(k, s string) {
	if _, ok := v.data[k]; ok {
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
		v.zone = localZone(v.data)
	}
	return v.zone
}

// asMap is the view as one map, every derived key included, for the
// template package. It is the view's own and valid until the next set.
func (v *view) asMap() map[string]string {
	if v.mergedValid {
		return v.merged
	}
	v.get("local_time_zone")
	for k := range v.data {
		if p, ok := strings.CutSuffix(k, "starts_at"); ok && (p == "" || strings.HasSuffix(p, "_")) {
			v.derivePrefix(strings.TrimSuffix(p, "_"))
		}
	}
	if v.merged == nil {
		v.merged = make(map[string]string, len(v.data)+len(v.over))
	}
	clear(v.merged)
	for k, s := range v.data {
		v.merged[k] = s
	}
	for _, p := range v.over {
		v.merged[p.k] = p.v
	}
	v.mergedValid = true
	return v.merged
}

// reset empties v for reuse, dropping its references to the data.
func (v *view) reset() {
	v.data, v.loc, v.zone = nil, nil, nil
	clear(v.over)
	v.over = v.over[:0]
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

var viewPool = sync.Pool{New: func() any { return &view{over: make([]pair, 0, 8)} }}

// derivedTimes are the values derive works out from one pair of start and end
// times in a zone and language. Every notification of a class derives the
// same ones, so they are cached (derivedTimesOf).
type derivedTimes struct {
	start, end string // the raw values, copies (never a record's substrings)
	zone       *time.Location
	loc        *localeData

	startOK, endOK    bool
	date, startTime   string
	endTime, duration string
}

// derivedTimesOf derives the values of start and end (end may be absent,
// ""), or returns the cached ones. The cache is direct-mapped and bounded:
// a slot holds the last pair that hashed to it, so a burst of one class's
// notifications finds its values and the cache never grows.
func derivedTimesOf(start, end string, zone *time.Location, loc *localeData) *derivedTimes {
	var h maphash.Hash
	h.SetSeed(derivedSeed)
	h.WriteString(start)
	h.WriteByte(0)
	h.WriteString(end)
	h.WriteByte(0)
	h.WriteString(zone.String())
	slot := &derivedCache[h.Sum64()%uint64(len(derivedCache))]
	if t := slot.Load(); t != nil && t.start == start && t.end == end && t.zone == zone && t.loc == loc {
		return t
	}
	t := deriveTimes(strings.Clone(start), strings.Clone(end), zone, loc)
	slot.Store(t)
	return t
}

func deriveTimes(start, end string, zone *time.Location, loc *localeData) *derivedTimes {
	t := &derivedTimes{start: start, end: end, zone: zone, loc: loc}
	s, err := time.Parse(time.RFC3339, start)
	if err != nil {
		return t
	}
	s = s.In(zone)
	t.startOK = true
	t.date = loc.format(s, loc.Date)
	t.startTime = loc.format(s, loc.Time)
	e, err := time.Parse(time.RFC3339, end)
	if err != nil {
		return t
	}
	e = e.In(zone)
	t.endOK = true
	t.endTime = loc.format(e, loc.Time)
	t.duration = strconv.Itoa(int(e.Sub(s) / time.Minute))
	return t
}

var (
	derivedSeed  = maphash.MakeSeed()
	derivedCache [4096]atomic.Pointer[derivedTimes]
)
