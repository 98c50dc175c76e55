package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gymhq/herald/internal/jsonr"
)

// reference is what Decode did before the parser: encoding/json, numbers
// as json.Number.
func reference(b []byte) (any, error) {
	if !json.Valid(b) { // what Unmarshal accepts, trailing data and depth included
		return nil, errors.New("invalid")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// FuzzParseMatchesEncodingJSON holds the parser to encoding/json on any
// valid UTF-8: both accept or both refuse, and what they accept decodes to
// the same values (duplicate keys, escapes, lone surrogates, numbers as
// written, depth).
func FuzzParseMatchesEncodingJSON(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		`{}`, `[]`, `0`, `-0.5e+10`, `1E3`, `"\u00e9\ud83d\ude00\ud800x\udc00"`, `"\ud800\u0041"`, `{"a":1,"a":[true,false,null]}`,
		`{"a":"\"\\\/\b\f\n\r\t"}`, ` {"a" : { } } `, `01`, `1.`, `.5`, `-`, `"\x"`, `"a` + "\x01" + `"`, `[1,]`, `{"a":1,}`, `nul`, `{"a"}`,
		`[` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `]`, `{"a":1} x`, `"\uD834"`, `"\uDD1E"`, `"\u12"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return // Decode refuses these before parsing
		}
		want, werr := reference(b)
		got, gerr := jsonr.ParseValue(b)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: encoding/json says %v, parser says %v", b, werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: encoding/json gives %#v, parser %#v", b, want, got)
		}
	})
}

// The envelope is matched as json.Unmarshal matched struct tags: exactly,
// else case-insensitively, the last member winning, null as absent.
func TestEnvelopeMatchesStructTags(t *testing.T) {
	type tagged struct {
		SpecVersion *string         `json:"specversion"`
		ID          *string         `json:"id"`
		Type        *string         `json:"type"`
		Data        json.RawMessage `json:"data"`
	}
	for _, in := range []string{
		`{"id":"a","ID":"b"}`, `{"ID":"b","id":"a"}`, `{"Id":"x","id":null}`, `{"iD":"k"}`, `{"ſpecversion":"1.0"}`,
		`{"TYPE":"t","data":{"a":1},"Data":[1]}`, `{"data":null}`, `{"dAtA":{"x":"y"}}`,
	} {
		var want tagged
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		got, err := envelopeOf([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if !reflect.DeepEqual(got.SpecVersion, want.SpecVersion) || !reflect.DeepEqual(got.ID, want.ID) ||
			!reflect.DeepEqual(got.Type, want.Type) || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("%s: got %v %v %v %s, encoding/json %v %v %v %s", in, got.SpecVersion, got.ID, got.Type, got.Data,
				want.SpecVersion, want.ID, want.Type, want.Data)
		}
	}
}

// cleanDataReference is how Decode cleaned an event's data before the
// parser did it (jsonr.Text): a second walk of the decoded values,
// CleanText on every string except under address keys, at any depth.
func cleanDataReference(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == "email" || k == "phone" || k == "push_tokens" {
				continue
			}
			if s, ok := x.(string); ok {
				v[k] = CleanText(s)
				continue
			}
			cleanDataReference(x)
		}
	case []any:
		for i, x := range v {
			if s, ok := x.(string); ok {
				v[i] = CleanText(s)
				continue
			}
			cleanDataReference(x)
		}
	}
}

// FuzzDecodeCleansAsBefore holds the cleaning done while parsing to the
// walk it replaced: an accepted event's data is its data member decoded
// by encoding/json and then cleaned, and its attributes are as written.
func FuzzDecodeCleansAsBefore(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, data := range []string{
		`{"name":"Ann\u0007\u001b[31mRed\u202e","note":"tab\there\u2028line","email":"a\u0085@x","phone":"+44\u200e1"}`,
		`{"member":{"name":"\u009b1mX","email":"\u202eb@x","push_tokens":["t\u0000k"]},"list":["a\u000b",{"phone":"\u0007","n":"\u0007"}]}`,
		`{"x":"caf\u00e9 ok","y":"é ✓","z":"DEL` + "\x7f" + `","w":"\u061c12345678901234567890"}`,
		`{"del":"0123456789abcdef` + "\x7f" + `0123456789abcdef","c1":"0123456789abcdef` + "\u0085" + `0123456789abcdef"}`,
		`{"push_tokens":{"deep":["\u0007"]},"email":[{"name":"\u0007"}],"EMAIL":"\u0007"}`,
		`{"long":"abcdefghijklmnopqrstuvwxyz0123456789\u2066abcdefghijklmnop","esc":"\\\"\/"}`,
	} {
		f.Add([]byte(`{"specversion":"1.0","id":"i\u202e","source":"s\u0007","type":"x.y","subject":"\u0085","data":` + data + `}`))
		f.Add([]byte(`{"specversion":"1.0","id":"i","source":"s","type":"x.y","DATA":` + data + `,"dAta":{"a":"\u0007"}}`))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			return
		}
		want, err := reference(ev.RawData)
		if err != nil {
			t.Fatalf("%q: data member %q: %v", b, ev.RawData, err)
		}
		cleanDataReference(want)
		if !reflect.DeepEqual(any(ev.Data), want) {
			t.Fatalf("%q: data %#v, want %#v", b, ev.Data, want)
		}
		var attrs struct {
			ID      string `json:"id"`
			Source  string `json:"source"`
			Subject string `json:"subject"`
		}
		if err := json.Unmarshal(b, &attrs); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if ev.ID != attrs.ID || ev.Source != attrs.Source || ev.Subject != attrs.Subject {
			t.Fatalf("%q: attributes %q %q %q, want them as written: %q %q %q", b, ev.ID, ev.Source, ev.Subject, attrs.ID, attrs.Source, attrs.Subject)
		}
	})
}
