package notification

import (
	"encoding/json"
	"iter"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gymhq/herald/internal/jsonw"
)

// Field is one key of a notification's Data and its value.
type Field struct{ Key, Value string }

// Data is a notification's flat template data (templates/README.md):
// string keys and string values, each key once, so template authors never
// meet Go types.
//
// It holds its fields in key order, which is the order both wire forms
// write them in (codec.go, json.go): a notification is encoded without
// sorting its keys, decoded without building a map, and the notifications
// of one person share one Data (issue 14: sorting each notification's map
// was a sixth of the dispatcher's CPU, and building, copying and decoding
// the maps much of the rest of the template data's cost).
//
// The zero Data is no data at all, which the JSON form writes as null and
// the binary form as a zero count; empty data (NewData of no fields, or
// DataOf an empty map) is written as {}. Nothing modifies a Data once
// made: With and the constructors return new ones, and Fields' slice is
// shared and read-only. The one exception is DecodeSharedInto's, whose
// fields are the caller's buffer, refilled by the caller's next decode.
type Data struct {
	f []Field // strictly ascending keys; nil for no data
	// invalid is whether a key or value is not valid UTF-8: worked out
	// from the fields whenever a Data is made, so that equal fields
	// always come with an equal flag, and read by Encode and Validate
	// instead of checking every string of every notification again (the
	// check was 8% of BenchmarkPlanEvent, a person's data encoded once
	// per channel). Decode makes Data only of strings it checked.
	invalid bool
}

// dataOf is Data of fs, strictly ascending, with its flag worked out.
func dataOf(fs []Field) Data { return Data{f: fs, invalid: !validFields(fs)} }

// validFields reports whether every key and value of fs is valid UTF-8.
func validFields(fs []Field) bool {
	for i := range fs {
		if !utf8.ValidString(fs[i].Key) || !utf8.ValidString(fs[i].Value) {
			return false
		}
	}
	return true
}

// ValidUTF8 reports whether every key and value of d is valid UTF-8.
func (d Data) ValidUTF8() bool { return !d.invalid }

// NewData is fs as Data, taking fs over (the caller must not use it
// afterwards). Fields are taken in turn as if assigned to a map: the last
// of equal keys wins. A nil fs is no data; an empty non-nil one is empty
// data.
func NewData(fs []Field) Data {
	if fs == nil {
		return Data{}
	}
	if !sortedUnique(fs) {
		slices.SortStableFunc(fs, func(a, b Field) int { return strings.Compare(a.Key, b.Key) })
		// Keep the last of each run of equal keys.
		out := fs[:0]
		for i := range fs {
			if i+1 < len(fs) && fs[i+1].Key == fs[i].Key {
				continue
			}
			out = append(out, fs[i])
		}
		clear(fs[len(out):]) // no stale strings past the end
		fs = out
	}
	return dataOf(fs)
}

// sortedUnique reports whether fs's keys are strictly ascending.
func sortedUnique(fs []Field) bool {
	for i := 1; i < len(fs); i++ {
		if fs[i-1].Key >= fs[i].Key {
			return false
		}
	}
	return true
}

// DataOf is m as Data; a nil map is no data.
func DataOf(m map[string]string) Data {
	if m == nil {
		return Data{}
	}
	fs := make([]Field, 0, len(m))
	for k, v := range m {
		fs = append(fs, Field{k, v})
	}
	return NewData(fs)
}

// Len is the number of keys.
func (d Data) Len() int { return len(d.f) }

// IsNil reports whether d is no data at all, rather than empty data.
func (d Data) IsNil() bool { return d.f == nil }

// Lookup is k's value and whether d has k.
func (d Data) Lookup(k string) (string, bool) {
	if i, ok := d.search(k); ok {
		return d.f[i].Value, true
	}
	return "", false
}

// search is the index of k's field, or where it would go, and whether d
// has k.
func (d Data) search(k string) (int, bool) {
	lo, hi := 0, len(d.f)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d.f[m].Key < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(d.f) && d.f[lo].Key == k
}

// Get is k's value, "" when d lacks it.
func (d Data) Get(k string) string {
	v, _ := d.Lookup(k)
	return v
}

// All yields d's keys and values in key order.
func (d Data) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, f := range d.f {
			if !yield(f.Key, f.Value) {
				return
			}
		}
	}
}

// Fields is d's fields in key order. The slice is d's own: read it, never
// write to it.
func (d Data) Fields() []Field { return d.f }

// Clone is d with fields of its own: for keeping a notification decoded
// into a reused buffer (notification.DecodeSharedInto) past the buffer's
// next use. Its strings are d's, so keep copies of those too when they
// are cut from a record that changes.
func (d Data) Clone() Data {
	if d.f == nil {
		return Data{}
	}
	return Data{f: append(make([]Field, 0, len(d.f)), d.f...), invalid: d.invalid}
}

// Map is a copy of d as a map; nil for no data.
func (d Data) Map() map[string]string {
	if d.f == nil {
		return nil
	}
	m := make(map[string]string, len(d.f))
	for _, f := range d.f {
		m[f.Key] = f.Value
	}
	return m
}

// With is d with fs over it: every field of fs, in turn, replaces or adds
// its key. fs is not kept. d is not changed; the result shares nothing
// with it that either would write to.
func (d Data) With(fs ...Field) Data {
	if len(fs) == 0 {
		return d // no data stays no data
	}
	var add Data
	if sortedUnique(fs) {
		add = dataOf(fs) // read only: the merge copies its fields
	} else {
		add = NewData(slices.Clone(fs))
	}
	out := make([]Field, 0, len(d.f)+len(add.f))
	i, j := 0, 0
	for i < len(d.f) && j < len(add.f) {
		switch c := strings.Compare(d.f[i].Key, add.f[j].Key); {
		case c < 0:
			out = append(out, d.f[i])
			i++
		case c > 0:
			out = append(out, add.f[j])
			j++
		default:
			out = append(out, add.f[j])
			i++
			j++
		}
	}
	out = append(out, d.f[i:]...)
	out = append(out, add.f[j:]...)
	if d.invalid {
		return dataOf(out) // the field that was invalid may be replaced
	}
	return Data{f: out, invalid: add.invalid}
}

// Without is d without key k (d itself when it lacks k).
func (d Data) Without(k string) Data {
	i, ok := d.search(k)
	if !ok {
		return d
	}
	out := make([]Field, 0, len(d.f)-1)
	out = append(out, d.f[:i]...)
	out = append(out, d.f[i+1:]...)
	if d.invalid {
		return dataOf(out) // the field that was invalid may be gone
	}
	return Data{f: out}
}

// String is d as fmt prints a map: map[k:v k:v], keys in order.
func (d Data) String() string {
	var b strings.Builder
	b.WriteString("map[")
	for i, f := range d.f {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.Key)
		b.WriteByte(':')
		b.WriteString(f.Value)
	}
	b.WriteByte(']')
	return b.String()
}

// Equal reports whether d and e hold the same keys and values, and are
// both no data or both data.
func (d Data) Equal(e Data) bool {
	return (d.f == nil) == (e.f == nil) && slices.Equal(d.f, e.f)
}

// MarshalJSON writes d as a JSON object in key order, or null for no data,
// as encoding/json writes a map[string]string (escaping <, > and & only
// when the encoder it is part of does).
func (d Data) MarshalJSON() ([]byte, error) {
	return d.appendJSON(nil), nil
}

// appendJSON appends MarshalJSON's bytes to b.
func (d Data) appendJSON(b []byte) []byte {
	if d.f == nil {
		return append(b, "null"...)
	}
	b = append(b, '{')
	for i, f := range d.f {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonw.String(b, f.Key)
		b = append(b, ':')
		b = jsonw.String(b, f.Value)
	}
	return append(b, '}')
}

// UnmarshalJSON reads a JSON object of string values, or null, as
// encoding/json reads into a map[string]string: the last of repeated keys
// wins, an object adds to the data d already holds (a record repeating
// its "data" member gets both objects' keys), and null makes it no data.
func (d *Data) UnmarshalJSON(b []byte) error {
	m := d.Map()
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*d = DataOf(m)
	return nil
}
