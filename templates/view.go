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
// the derived keys (fill), each added only where the data lacks it, and
// the values fitSMS shortens, which replace the data's. Reading through the
// view instead of a copy of the data saves copying every key of every
// notification (and clearing the copy): the data is read in place.
type view struct {
	data map[string]string
	over []pair
	// merged is data with over applied, for a part the template package
	// executes (it reads a map); built when first needed after a change.
	merged      map[string]string
	mergedValid bool
}

type pair struct{ k, v string }

// viewOf is a view of d with no render-time values.
func viewOf(d map[string]string) *view { return &view{data: d} }

// get is the value of k and whether it is present.
func (v *view) get(k string) (string, bool) {
	for i := range v.over {
		if v.over[i].k == k {
			return v.over[i].v, true
		}
	}
	s, ok := v.data[k]
	return s, ok
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

// add sets k to s unless k is present: derived keys never replace keys
// from the event.
func (v *view) add(k, s string) {
	if _, ok := v.get(k); !ok {
		v.mergedValid = false
		v.over = append(v.over, pair{k, s})
	}
}

// asMap is the view as one map, for the template package. It is the
// view's own and valid until the next set or add.
func (v *view) asMap() map[string]string {
	if len(v.over) == 0 {
		return v.data
	}
	if !v.mergedValid {
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
	}
	return v.merged
}

// reset empties v for reuse, dropping its references to the data.
func (v *view) reset() {
	v.data = nil
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

// fill makes v a view of data with the render-time values: for every key
// <p>_starts_at holding an RFC 3339 time, <p>_date and <p>_start_time, and
// with <p>_ends_at also <p>_end_time and <p>_duration_minutes; all in
// local_time_zone, which is also added. Values are formatted with the
// layouts and names of loc. Derived keys never replace keys from the
// event.
func (v *view) fill(data map[string]string, loc *localeData) {
	v.data = data
	var starts startKeys
	for k := range data {
		starts.add(k)
	}
	zone := localZone(v)
	v.add("local_time_zone", zone.String())
	for _, k := range starts.keys[:starts.n] {
		prefix := strings.TrimSuffix(strings.TrimSuffix(k, "starts_at"), "_")
		keys := derivedKeysOf(prefix)
		t := derivedTimesOf(v.at(k), v.at(keys.endsAt), zone, loc)
		if !t.startOK {
			continue
		}
		v.add(keys.date, t.date)
		v.add(keys.startTime, t.startTime)
		if !t.endOK {
			continue
		}
		v.add(keys.endTime, t.endTime)
		v.add(keys.duration, t.duration)
	}
}

// derivedTimes are the values fill derives from one pair of start and end
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
	derivedCache [1024]atomic.Pointer[derivedTimes]
)
