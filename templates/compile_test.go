package templates

import (
	"bytes"
	"errors"
	htmltemplate "html/template"
	"maps"
	"reflect"
	"sort"
	"strings"
	"testing"
	texttemplate "text/template"

	"github.com/gymhq/herald/notification"
)

// hostileValues are data values meant to find where the compiled path and the
// template packages part: markup and every character an escaper touches,
// NUL, invalid UTF-8 and noncharacters, line breaks, a very long value,
// times and numbers that do not parse, and format verbs.
var hostileValues = []string{
	"",
	" ",
	"<script>alert(1)</script>",
	`"'&+<>=` + "`" + "\t\v\f\r\n ",
	"\x00",
	"a\x00b",
	"\xff\xfe not UTF-8 \xc3",
	"\ufdd0\ufdef\ufff0\uffff\ufffd",
	"line one\nline two\r\nthree",
	strings.Repeat("é💪<&>", 2000),
	"not a time",
	"2026-13-45T99:00:00Z",
	"2026-11-23T07:00:00+01:00",
	"1", "1.0", "1.5", "-1", "NaN", "1e400", "0x1", "many",
	"%d %s %% %!",
	"{{.class_name}}",
	"javascript:alert(1)",
	"https://example.com/a b?c=d&e=%zz%41",
	"Europe/Madrid",
	"Nowhere/Zone",
	"Local",
}

// sameExecution renders pp through its program and through its template
// package with d and fails unless both write the same bytes, or fail with
// deeply equal errors (and so equal messages, and equal execError results
// for lint and the logs).
func sameExecution(t *testing.T, what string, pp *parsedPart, d map[string]string) {
	t.Helper()
	var got, want bytes.Buffer
	gerr := pp.prog.execute(&got, viewOf(d))
	werr := pp.exec.Execute(&want, d)
	switch {
	case (gerr == nil) != (werr == nil):
		t.Fatalf("%s: compiled error %v, template error %v", what, gerr, werr)
	case gerr != nil:
		if gerr.Error() != werr.Error() {
			t.Fatalf("%s: compiled error\n%v\ntemplate error\n%v", what, gerr, werr)
		}
		if !reflect.DeepEqual(gerr, werr) {
			t.Fatalf("%s: errors read the same but differ: %#v, %#v", what, gerr, werr)
		}
		if g, w := execError(gerr), execError(werr); !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: execError differs: %#v, %#v", what, g, w)
		}
	case !bytes.Equal(got.Bytes(), want.Bytes()):
		t.Fatalf("%s: compiled output\n%q\ntemplate output\n%q", what, got.Bytes(), want.Bytes())
	}
}

// renderData is the data Render gives n's templates in l.
func renderData(n *notification.Notification, l *localized) map[string]string {
	v := &view{}
	v.fill(n.Data, l.lang)
	return maps.Clone(v.asMap())
}

// shippedCases calls f with every part of every locale of every shipped
// rule and channel, and the data of each sample notification that renders
// it, as Render builds it.
func shippedCases(t testing.TB, f func(what string, pp *parsedPart, l *localized, n *notification.Notification)) {
	t.Helper()
	s, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range s.EventTypes() {
		for _, smp := range s.Samples(typ) {
			ns, err := s.Plan(smp.Event, smp.Event.Time)
			if err != nil {
				t.Fatal(err)
			}
			done := map[ruleKey]bool{}
			for i := range ns {
				n := &ns[i]
				k := ruleKey{n.Template, n.Channel}
				if done[k] {
					continue
				}
				done[k] = true
				r := s.rules[k]
				for _, locale := range sortedKeys(r.files[n.Channel]) {
					l := r.files[n.Channel][locale]
					for _, file := range sortedKeys(l.parts) {
						f(smp.File+" "+n.Template+" "+string(n.Channel)+" "+locale+" "+file, l.parts[file], l, n)
					}
				}
			}
		}
	}
}

// Every shipped part compiles: a template change or a compile change that
// sends one back to reflection shows here, not only in the benchmarks.
func TestShippedPartsCompile(t *testing.T) {
	s, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	parts := 0
	for k, r := range s.rules {
		for locale, l := range r.files[k.channel] {
			for file, pp := range l.parts {
				parts++
				if pp.prog == nil {
					_, err := compile(pp.tree.ParseName, pp.tree, funcs(l.lang))
					t.Errorf("%s %s %s %s is not compiled (%v):\n%s", k.template, k.channel, locale, file, err, pp.tree.Root)
				}
			}
		}
	}
	if parts < 50 {
		t.Fatalf("only %d parts: the walk missed the shipped templates", parts)
	}
}

// The compiled path renders every shipped part exactly as the template
// packages do, with every sample; with each data key removed in turn
// (missing-key errors); and with hostileValues values in each key.
func TestCompiledMatchesTemplates(t *testing.T) {
	shippedCases(t, func(what string, pp *parsedPart, l *localized, n *notification.Notification) {
		if pp.prog == nil {
			t.Fatalf("%s: not compiled", what)
		}
		sameExecution(t, what, pp, renderData(n, l))
		keys := sortedKeys(n.Data.Map())
		for _, k := range keys {
			m := *n
			m.Data = n.Data.Without(k)
			sameExecution(t, what+" without "+k, pp, renderData(&m, l))
		}
		for _, v := range hostileValues {
			m := *n
			every := n.Data.Map()
			for _, k := range keys {
				every[k] = v
			}
			m.Data = notification.DataOf(every)
			sameExecution(t, what+" with every value "+v, pp, renderData(&m, l))
			for _, k := range keys {
				m.Data = n.Data.With(notification.Field{Key: k, Value: v})
				sameExecution(t, what+" with "+k+"="+v, pp, renderData(&m, l))
			}
		}
	})
}

// synthetic are templates beyond the shipped ones that compile: every
// function, if and with with else, literals and parentheses, and the HTML
// contexts whose escapers are reimplemented.
var synthetic = []struct {
	html bool
	src  string
}{
	{false, `{{upper .a}}|{{lower .b}}|{{default "none" .c}}|{{default .a (index . "missing")}}|{{json .a}}|{{json (index . "b")}}`},
	{false, `{{.n}} {{plural .n "spot" "spots"}} {{plural (index . "c") .a .b}}`},
	{false, `{{date "Monday 2 January 2006 15:04 MST" .t .z}}|{{date .a .t "UTC"}}`},
	{false, `{{if .a}}A{{.a}}{{else if .b}}B{{else}}C{{end}}{{with .b}}[{{.}}|{{upper .}}]{{else}}no b{{end}}`},
	{false, `{{with index . "c"}}{{with upper .}}{{.}}{{end}}{{else}}{{with .a}}{{lower .}}{{end}}{{end}}{{/* a comment */}}`},
	{false, "{{- .a -}}\n  {{\"literal\"}} {{(.b)}} {{(upper (lower .c))}}\n{{- if index . \"c\" }} c {{- end}}"},
	{false, `{{with index . "missing"}}never{{else}}{{.missing}}{{end}}`},
	{true, `<p title="{{.a}}">{{.b}}</p><title>{{.c}}</title><textarea>{{.a}}</textarea>`},
	{true, `<a href="{{.a}}">x</a><a href="/x?q={{.b}}&r={{.c}}">y</a><a href=/{{.a}}>z</a><img src={{.b}}>`},
	{true, `<p class={{.a}} data-x='{{.b}}'>{{upper .c}}</p><!-- {{.a}} -->{{with .b}}<b>{{.}}</b>{{end}}`},
	{true, `<p>{{default "there" .c}}, {{date "2 de January" .t .z}}, {{plural .n "a" "b"}}</p>`},
}

// parseSynthetic parses src as Load parses a part, with the English funcs,
// and compiles it as Load does.
func parseSynthetic(t testing.TB, html bool, src string) *parsedPart {
	t.Helper()
	const name = "gym.test/sms.en.txt"
	fm := funcs(english)
	pp := &parsedPart{}
	if html {
		tt, err := htmltemplate.New(name).Option("missingkey=error").Funcs(fm).Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		pp.exec, pp.tree = tt, tt.Tree
	} else {
		tt, err := texttemplate.New(name).Option("missingkey=error").Funcs(fm).Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		pp.exec, pp.tree = tt, tt.Tree
	}
	pp.prog = compilePart(name, pp, html, fm)
	return pp
}

// syntheticData is the data the synthetic templates read.
func syntheticData(a, b, c, n, tm, z string) map[string]string {
	return map[string]string{"a": a, "b": b, "c": c, "n": n, "t": tm, "z": z}
}

// The compiled path matches the template packages on the synthetic
// templates, with hostileValues values in every key and each key removed.
func TestCompiledSyntheticMatches(t *testing.T) {
	for _, tc := range synthetic {
		pp := parseSynthetic(t, tc.html, tc.src)
		if pp.prog == nil {
			t.Fatalf("%s does not compile", tc.src)
		}
		base := syntheticData("Ana", "b+c", "<c>", "1", "2026-11-23T07:00:00Z", "Europe/Madrid")
		sameExecution(t, tc.src, pp, base)
		for _, k := range sortedKeys(base) {
			d := maps.Clone(base)
			delete(d, k)
			sameExecution(t, tc.src+" without "+k, pp, d)
			for _, v := range hostileValues {
				d := maps.Clone(base)
				d[k] = v
				sameExecution(t, tc.src+" with "+k+"="+v, pp, d)
			}
		}
	}
}

// Parts using what compile does not support are left to the template
// packages, and still render, and fail, as before.
func TestUnsupportedFallsBack(t *testing.T) {
	for _, tc := range []struct {
		html      bool
		src, want string
	}{
		{false, `{{range $k, $v := .}}{{if eq $k "a"}}{{$v}}{{end}}{{end}}`, "Ana"},
		{false, `{{printf "%s!" .a}}`, "Ana!"},
		{false, `{{.a | upper}}`, "ANA"},
		{false, `{{$x := .a}}{{$x}}`, "Ana"},
		{false, `{{if eq .a "Ana"}}yes{{end}}`, "yes"},
		{false, `{{len .a}}`, "3"},
		{false, `{{plural 1 "one" "other"}}`, "one"},
		{false, `{{upper .a .b}}`, ""}, // wrong number of args: fails as before
		{false, `{{with .a}}{{.b}}{{end}}`, ""},
		{false, `{{define "x"}}[{{.a}}]{{end}}{{template "x" .}}`, "[Ana]"},
		{false, `{{index . "a" "b"}}`, ""},
		{false, `{{.}}`, "map[a:Ana b:b+c local_time_zone:UTC]"}, // the derived keys too
		{true, `<script>var a = {{.a}};</script>`, `<script>var a = "Ana";</script>`},
		{true, `<p style="color: {{.a}}">x</p>`, `<p style="color: Ana">x</p>`},
	} {
		pp := parseSynthetic(t, tc.html, tc.src)
		if pp.prog != nil {
			t.Errorf("%s compiled; it should be left to the template package", tc.src)
			continue
		}
		d := map[string]string{"a": "Ana", "b": "b+c"}
		var b, want bytes.Buffer
		dv := viewOf(d)
		err := pp.execute(&b, dv)
		werr := pp.exec.Execute(&want, dv.asMap())
		if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
			t.Errorf("%s: error %v, want %v", tc.src, err, werr)
		}
		if err == nil && b.String() != tc.want {
			t.Errorf("%s = %q, want %q", tc.src, b.String(), tc.want)
		}
	}
}

// A missing key fails the compiled path with the error lint and the logs
// show: file, line and column, and the key.
func TestCompiledMissingKeyError(t *testing.T) {
	pp := parseSynthetic(t, false, "Hi {{.a}},\n  {{with .b}}{{.}}{{end}} {{date \"2\" .t \"UTC\"}}")
	if pp.prog == nil {
		t.Fatal("not compiled")
	}
	for _, tc := range []struct {
		d    map[string]string
		want string
	}{
		{map[string]string{"b": "x", "t": "2026-11-23T07:00:00Z"}, `gym.test/sms.en.txt:1:5: missing data key "a" (at <.a>)`},
		{map[string]string{"a": "x", "t": "2026-11-23T07:00:00Z"}, `gym.test/sms.en.txt:2:9: missing data key "b" (at <.b>)`},
		{map[string]string{"a": "x", "b": "y", "t": "soon"}, `gym.test/sms.en.txt:2:28: error calling date: date: "soon" is not an RFC 3339 time (at <date "2" .t "UTC">)`},
	} {
		var b bytes.Buffer
		err := pp.execute(&b, viewOf(tc.d))
		if err == nil {
			t.Fatalf("%v: no error", tc.d)
		}
		var re *renderError
		if got := execError(err); !errors.As(got, &re) || got.Error() != tc.want {
			t.Errorf("error %q, want %q", got, tc.want)
		}
	}
}

// FuzzCompiledRender puts arbitrary values into the samples' data and the
// synthetic templates' data: the compiled path must write the same bytes,
// and fail with the same errors, as the template packages.
func FuzzCompiledRender(f *testing.F) {
	f.Add(uint8(0), "Spin 45", "Emma Clarke", "Studio 2, Shoreditch", "2026-11-23T07:00:00Z")
	f.Add(uint8(7), "<b>a&b</b>+'\"", "\x00\xff", "1", "not a time")
	f.Add(uint8(200), strings.Repeat("é", 80), "javascript:x", "%41%zz", "Europe/Madrid")
	type shipped struct {
		what string
		pp   *parsedPart
		l    *localized
		n    *notification.Notification
	}
	var cases []shipped
	shippedCases(f, func(what string, pp *parsedPart, l *localized, n *notification.Notification) {
		cases = append(cases, shipped{what, pp, l, n})
	})
	var syn []*parsedPart
	for _, tc := range synthetic {
		syn = append(syn, parseSynthetic(f, tc.html, tc.src))
	}
	f.Fuzz(func(t *testing.T, pick uint8, v1, v2, v3, v4 string) {
		for _, c := range cases {
			m := *c.n
			d := c.n.Data.Map()
			keys := sortedKeys(d)
			sort.Strings(keys)
			d["class_name"], d["recipient_name"], d["recipient_first_name"] = v1, v2, v3
			d["class_location"], d["reason"] = v3, v4
			d[keys[int(pick)%len(keys)]] = v4
			if pick%5 == 0 {
				delete(d, keys[int(pick/5)%len(keys)])
			}
			m.Data = notification.DataOf(d)
			sameExecution(t, c.what, c.pp, renderData(&m, c.l))
		}
		for i, pp := range syn {
			sameExecution(t, synthetic[i].src, pp, syntheticData(v1, v2, v3, v4, v4, v3))
			sameExecution(t, synthetic[i].src, pp, syntheticData(v4, v3, v2, v1, v2, v1))
		}
	})
}

// BenchmarkExecute runs the parts of the booking confirmation email in es
// (the email-ics render of BenchmarkRender) through the compiled program
// and through the template packages, to show what compiling saves apart
// from the rest of a render.
func BenchmarkExecute(b *testing.B) {
	s, err := Embedded()
	if err != nil {
		b.Fatal(err)
	}
	var n *notification.Notification
	for _, smp := range s.Samples("gym.booking.confirmed") {
		if smp.Name != "member-es" {
			continue
		}
		ns, err := s.Plan(smp.Event, smp.Event.Time)
		if err != nil {
			b.Fatal(err)
		}
		for i := range ns {
			if ns[i].Channel == notification.Email {
				n = &ns[i]
			}
		}
	}
	if n == nil {
		b.Fatal("no email in gym.booking.confirmed/samples/member-es.json")
	}
	l := s.rules[ruleKey{n.Template, n.Channel}].resolve(n.Channel, "es")
	d := renderData(n, l)
	dv := viewOf(d)
	for _, file := range []string{partSubject, partText, partHTML} {
		pp := l.parts[file]
		for _, way := range []struct {
			name string
			exec func(*bytes.Buffer) error
		}{
			{"compiled", func(w *bytes.Buffer) error { return pp.prog.execute(w, dv) }},
			{"template", func(w *bytes.Buffer) error { return pp.exec.Execute(w, d) }},
		} {
			b.Run(file+"/"+way.name, func(b *testing.B) {
				var w bytes.Buffer
				b.ReportAllocs()
				for b.Loop() {
					w.Reset()
					if err := way.exec(&w); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
