package jsonr

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

// agrees reads in with read (which must consume it whole) and, when the
// Reader accepts it, checks encoding/json decodes in into a value of the
// same type without error and to the same value.
func agrees[T any](t *testing.T, what, in string, read func(*Reader) T) {
	t.Helper()
	r := New(in)
	got := read(&r)
	if !r.Done() {
		return // refused: encoding/json decides
	}
	var want T
	if err := json.Unmarshal([]byte(in), &want); err != nil {
		t.Fatalf("%s: Reader accepted %q as %#v; encoding/json: %v", what, in, got, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s of %q: Reader %#v, encoding/json %#v", what, in, got, want)
	}
}

// FuzzAgreesWithEncodingJSON holds every step of a Reader to encoding/json:
// what it accepts, encoding/json accepts and reads alike.
func FuzzAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`"plain"`, `"caf\u00e9 \"q\" \\ \/ \b\f\n\r\t"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\udc00\ud83d"`,
		`"\u0000"`, "\"\x01\"", `"é ✓"`, "\"\xff\"", `"\u2028"`, `"a`, `"\x"`, `"\u12"`,
		`0`, `-0`, `12`, `-9223372036854775808`, `9223372036854775807`, `1.5`, `1e3`, `01`, `-`, `123456789012345678`,
		`"2026-12-07T06:30:46.123456789Z"`, `"2026-12-07T06:30:46+01:00"`, `"2026-13-07T06:30:46Z"`, `"2026-12-07T06:30:46\u005a"`,
		`null`, `[]`, `["a","b"]`, `["a",]`, `[1]`, `{}`, `{"a":"b","a":"c"}`, `{"a":1}`, `{"a":"b",}`,
		` {"a" : [1, 2.5e-3, true, false, null, {"b": {}}]} `, `[[[[]]]]`, `{"a":"\ud800"}`, `tru`, `nul`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if !utf8.ValidString(in) {
			return // every caller checks the whole record first
		}
		agrees(t, "String", in, (*Reader).String)
		agrees(t, "Int", in, (*Reader).Int)
		agrees(t, "Time", in, (*Reader).Time)
		agrees(t, "Strings", in, (*Reader).Strings)
		agrees(t, "Object", in, func(r *Reader) map[string]string {
			var m map[string]string
			if r.Object(func(k, v string) {
				if m == nil {
					m = map[string]string{}
				}
				m[k] = v
			}) && m == nil {
				m = map[string]string{}
			}
			return m
		})

		r := New(in)
		r.p.space()
		raw := r.Skip()
		r.p.space()
		if r.Done() && !json.Valid([]byte(in)) {
			t.Fatalf("Skip accepted %q (as %q); encoding/json does not", in, raw)
		}
	})
}

func TestSkipAcceptsValidJSON(t *testing.T) {
	for _, in := range []string{
		`{"id":"n1","data":{"k":"v"},"n":[1,-0.5,2E+10,true,false,null],"s":"\"\\\/\b\f\n\r\t\u00e9"}`,
		` [ ] `, `{ }`, `"x"`, `0`, `-1.0e-0`,
	} {
		r := New(in)
		r.p.space()
		r.Skip()
		r.p.space()
		if !r.Done() {
			t.Errorf("Skip refused valid %q at %d", in, r.Offset())
		}
	}
}

func TestSkipDepth(t *testing.T) {
	deep := ""
	for range maxDepth + 2 {
		deep += "["
	}
	for range maxDepth + 2 {
		deep += "]"
	}
	r := New(deep)
	r.Skip()
	if r.Ok {
		t.Error("Skip followed nesting deeper than maxDepth")
	}
}

func TestTimeKeepsItsZone(t *testing.T) {
	r := New(`"2026-12-07T07:30:46.5+01:00"`)
	got := r.Time()
	if !r.Done() {
		t.Fatal("refused")
	}
	if _, off := got.Zone(); off != 3600 || !got.Equal(time.Date(2026, 12, 7, 6, 30, 46, 5e8, time.UTC)) {
		t.Errorf("read %v", got)
	}
}
