package templates

import (
	"bytes"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/internal/retaintest"
	"github.com/gymhq/herald/notification"
)

// viewOf is a view of d, its derived keys in English.
func viewOf(d map[string]string) *view { return &view{data: notification.DataOf(d), loc: english} }

// The view reads the data in place: derived keys are added only where the
// data lacks them, set values (fitSMS's) replace the data's, and the data
// itself is never written.
func TestViewLayers(t *testing.T) {
	data := map[string]string{
		"class_starts_at": "2026-11-23T07:00:00Z",
		"class_ends_at":   "2026-11-23T07:45:00Z",
		"class_date":      "from the event",
		"time_zone":       "Europe/Madrid",
		"note":            "long",
	}
	v := &view{}
	v.fill(notification.DataOf(data), english)
	for k, want := range map[string]string{
		"class_date":             "from the event", // derived keys never replace the event's
		"class_start_time":       "08:00",
		"class_end_time":         "08:45",
		"class_duration_minutes": "45",
		"local_time_zone":        "Europe/Madrid",
		"class_starts_at":        "2026-11-23T07:00:00Z",
	} {
		if got, ok := v.get(k); !ok || got != want {
			t.Errorf("%s = %q, %v; want %q", k, got, ok, want)
		}
	}
	m := v.asMap()
	if m["class_start_time"] != "08:00" || m["note"] != "long" {
		t.Fatalf("asMap = %v", m)
	}
	v.set("note", "lo…")
	if v.at("note") != "lo…" || v.asMap()["note"] != "lo…" {
		t.Errorf("a set value is not read over the data's: %q, %q", v.at("note"), v.asMap()["note"])
	}
	if data["note"] != "long" || len(data) != 5 {
		t.Errorf("the data was modified: %v", data)
	}
	v.reset()
	if !v.data.IsNil() || len(v.over) != 0 || len(v.merged) != 0 {
		t.Errorf("reset left %+v", v)
	}
}

// A part the template package executes (here, one with range, which compile
// leaves to it) sees the derived values and the set ones, as a compiled part
// does.
func TestViewUncompiledPart(t *testing.T) {
	pp := parseSynthetic(t, false, `{{range $i, $x := .}}{{end}}{{.class_start_time}} {{.note}}`)
	if pp.prog != nil {
		t.Fatal("compiled; the test needs a part left to the template package")
	}
	v := &view{}
	v.fill(notification.DataOf(map[string]string{"class_starts_at": "2026-11-23T07:00:00Z", "note": "long"}), english)
	var b bytes.Buffer
	if err := pp.execute(&b, v); err != nil || b.String() != "07:00 long" {
		t.Fatalf("got %q, %v", b.String(), err)
	}
	v.set("note", "lo…")
	b.Reset()
	if err := pp.execute(&b, v); err != nil || b.String() != "07:00 lo…" {
		t.Fatalf("after set: got %q, %v", b.String(), err)
	}
}

// The derived-times cache is keyed by the times, the zone and the
// language: the same class start shown in another zone or language is
// derived again, not served from the slot.
func TestDerivedTimesCacheKeys(t *testing.T) {
	madrid, ny := loadZone("Europe/Madrid"), loadZone("America/New_York")
	es := &localeData{
		Weekdays: english.Weekdays, WeekdaysShort: english.WeekdaysShort,
		Months: english.Months, MonthsShort: english.MonthsShort,
		Date: "2/1/2006", Time: "15.04",
	}
	start, end := "2026-11-23T07:00:00Z", "2026-11-23T08:30:00Z"
	for _, tc := range []struct {
		zone                   *time.Location
		loc                    *localeData
		date, startTime, endTm string
	}{
		{madrid, english, english.format(time.Date(2026, 11, 23, 8, 0, 0, 0, madrid), english.Date), "08:00", "09:30"},
		{ny, english, english.format(time.Date(2026, 11, 23, 2, 0, 0, 0, ny), english.Date), "02:00", "03:30"},
		{madrid, es, "23/11/2026", "08.00", "09.30"},
		{madrid, english, english.format(time.Date(2026, 11, 23, 8, 0, 0, 0, madrid), english.Date), "08:00", "09:30"},
	} {
		for range 2 { // derived, then cached
			d := derivedTimesOf(start, end, tc.zone, tc.loc)
			if !d.startOK || !d.endOK || d.date != tc.date || d.startTime != tc.startTime || d.endTime != tc.endTm || d.duration != "90" {
				t.Fatalf("%s %s: %+v", tc.zone, tc.loc.Time, d)
			}
		}
	}
	if d := derivedTimesOf("not a time", end, madrid, english); d.startOK || d.endOK {
		t.Errorf("a start that does not parse derived %+v", d)
	}
	if d := derivedTimesOf(start, "", madrid, english); !d.startOK || d.endOK {
		t.Errorf("no end derived %+v", d)
	}
}

// The derived-times cache holds copies of the times it is keyed by, never
// the record they were read from.
func TestDerivedTimesCacheKeepsNoRecord(t *testing.T) {
	if retaintest.Kept("2026-11-23T07:00:00Z", func(s string) { derivedTimesOf(s, "", time.UTC, english) }) {
		t.Error("the derived-times cache keeps the record its start came from")
	}
	if retaintest.Kept("2026-11-23T08:00:00Z", func(s string) { derivedTimesOf("2026-11-23T07:00:00Z", s, time.UTC, english) }) {
		t.Error("the derived-times cache keeps the record its end came from")
	}
}

// refDerived is the data with every derived key as README.md states them,
// worked out eagerly: what fillData built before derived keys were
// worked out on demand (without its limit of four <p>_starts_at keys).
func refDerived(data map[string]string, loc *localeData) map[string]string {
	d := maps.Clone(data)
	zone := localZone(notification.DataOf(data).Lookup)
	if _, ok := d["local_time_zone"]; !ok {
		d["local_time_zone"] = zone.String()
	}
	put := func(k, v string) {
		if _, ok := d[k]; !ok {
			d[k] = v
		}
	}
	for k, s := range data {
		p, ok := strings.CutSuffix(k, "starts_at")
		if !ok || p != "" && !strings.HasSuffix(p, "_") {
			continue
		}
		start, err := time.Parse(time.RFC3339, s)
		if err != nil {
			continue
		}
		start = start.In(zone)
		put(p+"date", loc.format(start, loc.Date))
		put(p+"start_time", loc.format(start, loc.Time))
		end, err := time.Parse(time.RFC3339, data[p+"ends_at"])
		if err != nil {
			continue
		}
		end = end.In(zone)
		put(p+"end_time", loc.format(end, loc.Time))
		put(p+"duration_minutes", strconv.Itoa(int(end.Sub(start)/time.Minute)))
	}
	return d
}

// The view works a derived key out when it is read; every key reads as in
// the eager reference, and asMap is the reference whole.
func TestViewDerivesAsReference(t *testing.T) {
	for i, data := range []map[string]string{
		{"class_starts_at": "2026-11-23T07:00:00Z", "class_ends_at": "2026-11-23T07:45:00Z", "recipient_time_zone": "America/New_York"},
		{"starts_at": "2026-11-23T07:00:00+01:00", "ends_at": "2026-11-23T06:00:00Z"}, // the top level
		{"a_starts_at": "2026-11-23T07:00:00Z", "b_starts_at": "2026-11-24T07:00:00Z", "c_starts_at": "2026-11-25T07:00:00Z",
			"d_starts_at": "2026-11-26T07:00:00Z", "e_starts_at": "2026-11-27T07:00:00Z", "e_ends_at": "2026-11-27T08:00:00Z",
			"class_time_zone": "Asia/Tokyo"}, // more than four
		{"class_starts_at": "soon", "class_ends_at": "2026-11-23T07:45:00Z"},                            // no time
		{"class_starts_at": "2026-11-23T07:00:00Z", "class_ends_at": "later"},                           // no end
		{"class_starts_at": "2026-11-23T07:00:00Z", "class_date": "event's", "local_time_zone": "mine"}, // data wins
		{"xstarts_at": "2026-11-23T07:00:00Z", "time_zone": "Nowhere/Zone"},                             // not a prefix
		{"_starts_at": "2026-11-23T07:00:00Z", "_ends_at": "2026-11-23T08:00:00Z"},                      // an object named ""
		{},
	} {
		want := refDerived(data, english)
		v := &view{}
		v.fill(notification.DataOf(data), english)
		for k, w := range want {
			if got, ok := v.get(k); !ok || got != w {
				t.Errorf("%d: %s = %q, %v; want %q", i, k, got, ok, w)
			}
		}
		for _, p := range []string{"", "_", "class_", "x", "a_", "e_", "nothing_"} {
			for _, s := range []string{"date", "start_time", "end_time", "duration_minutes"} {
				if _, in := want[p+s]; in {
					continue
				}
				if got, ok := v.get(p + s); ok {
					t.Errorf("%d: %s%s = %q, want absent", i, p, s, got)
				}
			}
		}
		fresh := &view{}
		fresh.fill(notification.DataOf(data), english)
		if got := fresh.asMap(); !maps.Equal(got, want) {
			t.Errorf("%d: asMap\n%v\nwant\n%v", i, got, want)
		}
	}
}

// asMap is built in one pass over the data, however many times it has:
// the derived values go into the map, not over, and fitSMS's set updates
// the map in place.
func TestViewAsMapLinear(t *testing.T) {
	data := map[string]string{"note": "long"}
	for i := range 1000 {
		data["k"+strconv.Itoa(i)+"_starts_at"] = "2026-11-23T07:00:00Z"
	}
	v := &view{}
	v.fill(notification.DataOf(data), english)
	m := v.asMap()
	if len(m) != 1+1000*3+1 || m["k999_start_time"] != "07:00" || len(v.over) != 0 {
		t.Fatalf("asMap has %d keys, over %d", len(m), len(v.over))
	}
	v.set("note", "lo…")
	if !v.mergedValid || v.asMap()["note"] != "lo…" {
		t.Errorf("set after asMap: valid %v, note %q", v.mergedValid, v.asMap()["note"])
	}
	for i := range 100 {
		v.set("k"+strconv.Itoa(i)+"_x", "y")
	}
	v.reset()
	if cap(v.over) > maxPooledOver {
		t.Errorf("a pooled view keeps room for %d values", cap(v.over))
	}
}

// The cache knows a zone by its name (a zone loaded twice is one entry,
// and no slot holds a Location) and keeps languages apart.
func TestDerivedTimesCacheZoneNameAndLanguage(t *testing.T) {
	z1, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Skip(err)
	}
	z2, _ := time.LoadLocation("Europe/Madrid")
	es := &localeData{
		Weekdays: english.Weekdays, WeekdaysShort: english.WeekdaysShort,
		Months: english.Months, MonthsShort: english.MonthsShort,
		Date: "2/1/2006", Time: "15.04",
	}
	// A start whose en and es slots differ (almost any).
	var start string
	for h := range 24 {
		start = fmt.Sprintf("2026-11-23T%02d:00:00Z", h)
		if derivedSlot(start, "", "Europe/Madrid", english) != derivedSlot(start, "", "Europe/Madrid", es) {
			break
		}
	}
	en1 := derivedTimesOf(start, "", z1, english)
	es1 := derivedTimesOf(start, "", z1, es)
	if derivedTimesOf(start, "", z2, english) != en1 || derivedTimesOf(start, "", z2, es) != es1 {
		t.Error("en and es renders of one class and zone evict each other, or a zone loaded again misses")
	}
	if en1.date == es1.date {
		t.Errorf("en and es share %q", en1.date)
	}
}
