package live

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/queue"
)

// Version reads an attendance record for the dashboards' consumer to
// conflate (kafkarun.ConsumerConfig.Conflate): its version, compared only
// with records of the same scope, the same class for the same people (its
// instructor and location); ok is false for a record that does not
// decode. Of a class's records in one fetch, one is then passed over when
// the next later one delivered has a higher version. Each person's live
// value keeps the highest version, the first to arrive at it
// (feed.Store.SetLive), so every view ends as it would have with both; it
// skips only a figure about to be replaced. When the fan-out has fallen
// behind (after a restart or a stall, or while it yields to
// notifications) a fetch brings many figures of each class, and the
// staff's views get the last, not each on the way to it. In a burst of
// booking events it mostly keeps up, and little is passed over. A record
// too large for a live value
// is not read either: it stands for nothing.
//
// A record is read as Handle decodes it: one Handle passes over must not
// stand for one it delivers (FuzzVersion). The Aggregator's own records
// are read by a scan of exactly the layout it writes (written); anything
// else, by encoding/json. Decoding every record of a 100,000-update flood
// with encoding/json was the largest part of the flood's cost left after
// conflation (0.51 s of CPU in one flows-compete run).
func Version(m *queue.Message) (scope string, version int64, ok bool) {
	if len(m.Value) > feed.MaxItemBytes {
		// No view can hold it (feed.Store.SetLive refuses it), so it must
		// stand for nothing.
		return "", 0, false
	}
	cls, ins, loc, v, ok := written(m.Value)
	if !ok {
		var a Attendance
		if json.Unmarshal(m.Value, &a) != nil || a.ClassID == "" {
			return "", 0, false
		}
		cls, ins, loc, v = a.ClassID, a.InstructorID, a.Location, a.Version
	}
	if !keyed(m, cls) {
		return "", 0, false // Handle passes it over
	}
	// Each part's length first, so that no two triples make one scope.
	b := make([]byte, 0, 24+len(cls)+len(ins)+len(loc))
	for _, p := range [...]string{cls, ins, loc} {
		b = strconv.AppendInt(b, int64(len(p)), 10)
		b = append(b, ':')
		b = append(b, p...)
	}
	return string(b), v, true
}

// written reads b when it is exactly what json.Marshal writes for an
// Attendance (its fields in order, no spaces, instructor_id only when set)
// with no escape in any string, and validates every field as Handle's
// decode would: strings of valid UTF-8 without control characters,
// starts_at a time encoding/json accepts, integers without fraction or
// exponent that fit, booleans. ok is false for anything else, decoded or
// refused by encoding/json instead, so the scan can only be stricter than
// encoding/json, never read a record otherwise.
func written(b []byte) (cls, ins, loc string, version int64, ok bool) {
	r := scan{b: b}
	r.lit(`{"type":`)
	r.str()
	r.lit(`,"class_id":`)
	cls = r.str()
	r.lit(`,"class_name":`)
	r.str()
	r.lit(`,"location":`)
	loc = r.str()
	r.lit(`,"starts_at":`)
	r.time()
	if r.has(`,"instructor_id":`) {
		ins = r.str()
		if ins == "" {
			r.bad = true // omitempty: Marshal never writes it empty
		}
	}
	r.lit(`,"confirmed":`)
	r.int(strconv.IntSize)
	r.lit(`,"capacity":`)
	r.int(strconv.IntSize)
	r.lit(`,"busy":`)
	r.bool()
	r.lit(`,"closed":`)
	r.bool()
	r.lit(`,"version":`)
	version = r.int(64)
	r.lit(`}`)
	if r.bad || r.i != len(b) || cls == "" {
		return "", "", "", 0, false
	}
	return cls, ins, loc, version, true
}

// scan reads b from i; bad once anything did not match.
type scan struct {
	b   []byte
	i   int
	bad bool
}

func (r *scan) has(s string) bool {
	if !r.bad && bytes.HasPrefix(r.b[r.i:], []byte(s)) {
		r.i += len(s)
		return true
	}
	return false
}

func (r *scan) lit(s string) {
	if !r.has(s) {
		r.bad = true
	}
}

// str reads a string without escapes; its quotes are at r.b[start-1] and
// r.b[r.i-1].
func (r *scan) str() string {
	if !r.has(`"`) {
		r.bad = true
		return ""
	}
	start := r.i
	for ; r.i < len(r.b); r.i++ {
		switch c := r.b[r.i]; {
		case c == '"':
			s := r.b[start:r.i]
			r.i++
			if !utf8.Valid(s) {
				r.bad = true
				return ""
			}
			return string(s)
		case c == '\\' || c < 0x20:
			r.bad = true
			return ""
		}
	}
	r.bad = true
	return ""
}

// time reads a string as encoding/json reads a time.Time: the quoted
// literal handed to its UnmarshalJSON.
func (r *scan) time() {
	start := r.i
	r.str()
	if r.bad {
		return
	}
	var t time.Time
	if t.UnmarshalJSON(r.b[start:r.i]) != nil {
		r.bad = true
	}
}

// int reads an integer as JSON writes one, -?(0|[1-9][0-9]*), that fits
// in bits.
func (r *scan) int(bits int) int64 {
	if r.bad {
		return 0
	}
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	digits := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	if r.i == digits || r.b[digits] == '0' && r.i-digits > 1 {
		r.bad = true
		return 0
	}
	n, err := strconv.ParseInt(string(r.b[start:r.i]), 10, bits)
	if err != nil {
		r.bad = true
	}
	return n
}

func (r *scan) bool() {
	if !r.has("true") && !r.has("false") {
		r.bad = true
	}
}
