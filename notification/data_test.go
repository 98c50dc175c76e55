package notification_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/gymhq/herald/notification"
)

// Data answers as the map it replaced would: NewData as assignments in
// turn (the last of equal keys wins), With as more assignments, Without as
// a delete, Lookup as an index, All in key order, and its JSON as the
// map's, both ways.
func FuzzDataAsMap(f *testing.F) {
	f.Add([]byte("a=1;b=2;a=3"), []byte("b=9;c=1"), "a")
	f.Add([]byte(""), []byte(""), "")
	f.Add([]byte("z=;y=;x=;=e"), []byte("=f;x=g"), "x")
	f.Add([]byte("a=\xff;b=2"), []byte("a=1"), "b")
	f.Add([]byte("a=1;b=\xff"), []byte("c=\xfe"), "b")
	f.Add([]byte("a=1"), []byte("b=\xff"), "c") // valid data, an invalid field added
	f.Add([]byte("a=\xff"), []byte("b=1"), "a") // the invalid field dropped
	f.Add([]byte("a=\xff"), []byte("a=1"), "b") // the invalid field replaced
	f.Fuzz(func(t *testing.T, first, second []byte, drop string) {
		fields := func(b []byte) []notification.Field {
			var fs []notification.Field
			for _, kv := range splitBytes(b, ';') {
				k, v, _ := cutBytes(kv, '=')
				fs = append(fs, notification.Field{Key: string(k), Value: string(v)})
			}
			return fs
		}
		fs, more := fields(first), fields(second)
		want := map[string]string{}
		for _, f := range fs {
			want[f.Key] = f.Value
		}
		d := notification.NewData(append([]notification.Field{}, fs...))
		sameData(t, "NewData", d, want)

		// With leaves d as it was.
		before := d.Clone()
		w := d.With(more...)
		sameData(t, "NewData", d, want)
		if !d.Equal(before) {
			t.Fatalf("With changed its receiver")
		}
		for _, f := range more {
			want[f.Key] = f.Value
		}
		sameData(t, "With", w, want)

		_, had := want[drop]
		delete(want, drop)
		wo := w.Without(drop)
		sameData(t, "Without", wo, want)
		if _, ok := wo.Lookup(drop); ok {
			t.Fatalf("Without(%q) still has it", drop)
		}
		if !had && !reflect.DeepEqual(wo, w) {
			t.Fatalf("Without of an absent key changed the data")
		}

		// JSON: the map's bytes, and read back as the map is.
		jd, err := json.Marshal(wo)
		if err != nil {
			t.Fatal(err)
		}
		jm, _ := json.Marshal(want)
		if string(jd) != string(jm) {
			t.Fatalf("JSON %s, the map's %s", jd, jm)
		}
		var back notification.Data
		if err := json.Unmarshal(jd, &back); err != nil {
			t.Fatal(err)
		}
		var backMap map[string]string
		if err := json.Unmarshal(jm, &backMap); err != nil {
			t.Fatal(err)
		}
		sameData(t, "UnmarshalJSON", back, backMap)
	})
}

// sameData fails unless d holds exactly m, in key order, and finds each key.
func sameData(t *testing.T, what string, d notification.Data, m map[string]string) {
	t.Helper()
	if d.Len() != len(m) || !maps.Equal(d.Map(), m) {
		t.Fatalf("%s: %v, want %v", what, d.Map(), m)
	}
	valid := true
	for k, v := range m {
		valid = valid && utf8.ValidString(k) && utf8.ValidString(v)
	}
	if d.ValidUTF8() != valid {
		t.Fatalf("%s: ValidUTF8 %v, want %v", what, d.ValidUTF8(), valid)
	}
	keys := slices.Sorted(maps.Keys(m))
	var got []string
	for k, v := range d.All() {
		got = append(got, k)
		if lv, ok := d.Lookup(k); !ok || lv != v || d.Get(k) != m[k] {
			t.Fatalf("%s: Lookup(%q) = %q, %v; want %q", what, k, lv, ok, m[k])
		}
	}
	if !slices.Equal(got, keys) && len(keys) > 0 {
		t.Fatalf("%s: keys %q, want %q", what, got, keys)
	}
	for _, k := range []string{"", "\x00", "a", "zzz", "\xff"} {
		if _, in := m[k]; !in {
			if v, ok := d.Lookup(k); ok {
				t.Fatalf("%s: Lookup(%q) of an absent key = %q", what, k, v)
			}
		}
	}
}

func splitBytes(b []byte, sep byte) [][]byte {
	if len(b) == 0 {
		return nil
	}
	var out [][]byte
	for {
		i := slices.Index(b, sep)
		if i < 0 {
			return append(out, b)
		}
		out = append(out, b[:i])
		b = b[i+1:]
	}
}

func cutBytes(b []byte, sep byte) (before, after []byte, found bool) {
	if i := slices.Index(b, sep); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// No data and empty data are different values, written differently in
// both forms, and each reads back as itself.
func TestDataNilAndEmpty(t *testing.T) {
	for _, c := range []struct {
		name string
		d    notification.Data
		json string
	}{
		{"no data", notification.Data{}, "null"},
		{"DataOf(nil)", notification.DataOf(nil), "null"},
		{"NewData(nil)", notification.NewData(nil), "null"},
		{"empty", notification.DataOf(map[string]string{}), "{}"},
		{"NewData(empty)", notification.NewData([]notification.Field{}), "{}"},
	} {
		b, err := json.Marshal(c.d)
		if err != nil || string(b) != c.json {
			t.Errorf("%s: JSON %s, %v; want %s", c.name, b, err, c.json)
		}
		if c.d.IsNil() != (c.json == "null") {
			t.Errorf("%s: IsNil %v", c.name, c.d.IsNil())
		}
		n := sample()
		n.Data = c.d
		enc, err := notification.Encode(n)
		if err != nil {
			t.Fatal(err)
		}
		back, err := notification.Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		if back.Data.IsNil() != c.d.IsNil() || back.Data.Len() != 0 {
			t.Errorf("%s: decoded as %#v", c.name, back.Data)
		}
		if c.d.Clone().IsNil() != c.d.IsNil() {
			t.Errorf("%s: Clone changed IsNil", c.name)
		}
	}
}

// A clone keeps its fields when the buffer a worker decoded into is
// reused for the next record.
func TestDataCloneOutlivesTheBuffer(t *testing.T) {
	a, b := sample(), sample()
	a.Data = notification.DataOf(map[string]string{"class_name": "Spin", "z": "1"})
	b.Data = notification.DataOf(map[string]string{"class_name": "Yoga", "z": "2"})
	ea, _ := notification.Encode(a)
	eb, _ := notification.Encode(b)
	var n notification.Notification
	_, buf, err := notification.DecodeSharedInto(ea, &n, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept, alias := n.Data.Clone(), n.Data
	if _, _, err := notification.DecodeSharedInto(eb, &n, buf); err != nil {
		t.Fatal(err)
	}
	if kept.Get("class_name") != "Spin" {
		t.Errorf("the clone reads %q after the buffer's reuse", kept.Get("class_name"))
	}
	if alias.Get("class_name") != "Yoga" {
		t.Errorf("the buffer was not reused (%q): the test shows nothing", alias.Get("class_name"))
	}
}

// A JSON record repeating its "data" member gets both objects' keys, as
// encoding/json decoding into the map did (found by a review); null in
// between empties it.
func TestDataRepeatedJSONMember(t *testing.T) {
	n := sample()
	n.Data = notification.DataOf(map[string]string{"x": "y"})
	b, err := notification.JSON(n)
	if err != nil {
		t.Fatal(err)
	}
	for repeated, want := range map[string]map[string]string{
		`"data":{"a":"1"},"data":{"b":"2"}`:             {"a": "1", "b": "2"},
		`"data":{"a":"1"},"Data":{"a":"3"}`:             {"a": "3"},
		`"data":{"a":"1"},"data":{}`:                    {"a": "1"},
		`"data":{"a":"1"},"data":null,"data":{"b":"2"}`: {"b": "2"},
		`"data":{"a":"1"},"data":null`:                  nil,
	} {
		in := bytes.Replace(b, []byte(`"data":{"x":"y"}`), []byte(repeated), 1)
		got, err := notification.Parse(in)
		if err != nil {
			t.Fatalf("%s: %v", repeated, err)
		}
		if !maps.Equal(got.Data.Map(), want) || got.Data.IsNil() != (want == nil) {
			t.Errorf("%s: data %v, want %v", repeated, got.Data, want)
		}
	}
	if d := (notification.Data{}).With(); !d.IsNil() {
		t.Errorf("no data With nothing is %v, want no data", d)
	}
}
