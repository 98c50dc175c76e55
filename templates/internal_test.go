package templates

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/notification"
)

func TestICSFolding(t *testing.T) {
	for _, s := range []string{
		"SUMMARY:" + strings.Repeat("a", 67),  // exactly 75 octets: no fold
		"SUMMARY:" + strings.Repeat("a", 68),  // 76: one fold
		"SUMMARY:" + strings.Repeat("é", 100), // two-octet runes across every boundary
		"SUMMARY:" + strings.Repeat("💪", 60),  // four-octet runes
		"X:" + strings.Repeat("ab", 200),
		"X:" + strings.Repeat("\x80", 200), // not UTF-8: must still terminate
	} {
		var w icsWriter
		w.line(s)
		out := string(w.b)
		var unfolded strings.Builder
		for i, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
			if len(l) > 75 {
				t.Errorf("line %d has %d octets", i, len(l))
			}
			if utf8.ValidString(s) && !utf8.ValidString(l) {
				t.Errorf("line %d splits a rune: %q", i, l)
			}
			if i > 0 {
				if l[0] != ' ' {
					t.Errorf("continuation %d does not start with a space", i)
				}
				l = l[1:]
			}
			unfolded.WriteString(l)
		}
		if unfolded.String() != s {
			t.Errorf("unfolding does not restore the line:\n%q\n%q", unfolded.String(), s)
		}
		if len(s) <= 75 && strings.Count(out, "\r\n") != 1 {
			t.Errorf("a %d-octet line was folded", len(s))
		}
	}
}

func TestICSText(t *testing.T) {
	for in, want := range map[string]string{
		"a,b;c\\d":         `a\,b\;c\\d`,
		"line1\nline2":     `line1\nline2`,
		"line1\r\nline2":   `line1\nline2`,
		"bell\a and \x7f.": "bell and .",
	} {
		if got := icsText(in); got != want {
			t.Errorf("icsText(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"":               "",
		"Ana":            ";CN=Ana",
		"Díaz, Ana":      `;CN="Díaz, Ana"`,
		`Ana "A" Díaz`:   ";CN=Ana 'A' Díaz",
		"a:b":            `;CN="a:b"`,
		"new\nline name": ";CN=new line name",
	} {
		if got := icsCN(in); got != want {
			t.Errorf("icsCN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGSMSeptets(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		bad  rune
		isOK bool
	}{
		{"Hola, Peña! ¿Qué tal? 07:00 @ Sala 2", 36, 0, true},
		{"Price: 10€ [promo]", 21, 0, true},
		{"sábado", 0, 'á', false},
		{"It\u2019s on", 0, '\u2019', false},
		{"Ready 💪", 0, '💪', false},
	} {
		n, bad, ok := gsmSeptets(tc.s)
		if n != tc.n || bad != tc.bad || ok != tc.isOK {
			t.Errorf("gsmSeptets(%q) = %d %q %v, want %d %q %v", tc.s, n, bad, ok, tc.n, tc.bad, tc.isOK)
		}
	}
	if got := smsText("It\u2019s \u201con\u201d \u2013 now\u2026"); got != `It's "on" - now...` {
		t.Errorf("smsText = %q", got)
	}
}

func TestParseTemplateName(t *testing.T) {
	for name, want := range map[string]*templateName{
		"email.en.subject.txt":          {"", notification.Email, "en", partSubject},
		"email.es-MX.html":              {"", notification.Email, "es-MX", partHTML},
		"sms.en.txt":                    {"", notification.SMS, "en", partText},
		"push.pt-BR.title.txt":          {"", notification.Push, "pt-BR", partTitle},
		"front-desk.email.en.txt":       {"front-desk", notification.Email, "en", partText},
		"staff.push.en.body.txt":        {"staff", notification.Push, "en", partBody},
		"sms.en.html":                   nil, // SMS has no HTML part
		"email.en":                      nil,
		"emial.en.txt":                  nil,
		"a.b.email.en.txt":              nil,
		"push.en.txt":                   nil,
		"email..txt":                    nil,
		"front-desk.email.en.title.txt": nil,
	} {
		got, ok := parseTemplateName(name)
		if want == nil {
			if ok {
				t.Errorf("%s parsed as %+v", name, got)
			}
			continue
		}
		if !ok || got != *want {
			t.Errorf("%s = %+v %v, want %+v", name, got, ok, *want)
		}
	}
}

func TestFlatten(t *testing.T) {
	var data map[string]any
	dec := json.NewDecoder(strings.NewReader(`{
		"booking_id": "b1",
		"class": {"name": "Spin", "capacity": 20, "price": 9.5, "full": false, "tags": ["a"],
			"instructor": {"name": "Marco", "push_tokens": ["t"], "preferences": {"sms": false}}},
		"class_name": "top-level wins",
		"nothing": null,
		"attendees": [{"id": "m1"}]
	}`))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"booking_id":            "b1",
		"class_name":            "top-level wins",
		"class_capacity":        "20",
		"class_price":           "9.5",
		"class_full":            "false",
		"class_instructor_name": "Marco",
	}
	if got := notification.NewData(flatten(data, 0)).Map(); !reflect.DeepEqual(got, want) {
		t.Errorf("flatten = %v\nwant %v", got, want)
	}
}

func TestLocaleFormat(t *testing.T) {
	es, err := parseLocaleData([]byte(`
weekdays: [domingo, lunes, martes, miércoles, jueves, viernes, sábado]
weekdays_short: [dom, lun, mar, mié, jue, vie, sáb]
months: [enero, febrero, marzo, abril, mayo, junio, julio, agosto, septiembre, octubre, noviembre, diciembre]
months_short: [ene, feb, mar, abr, may, jun, jul, ago, sept, oct, nov, dic]
date: "Monday 2 de January"
time: "15:04"
`))
	if err != nil {
		t.Fatal(err)
	}
	tm := time.Date(2026, 11, 28, 7, 5, 0, 0, time.UTC)
	for layout, want := range map[string]string{
		es.Date:                  "sábado 28 de noviembre",
		"Mon 2 Jan 2006, 15:04":  "sáb 28 nov 2026, 07:05",
		"02/01":                  "28/11",
		"January Jan Monday Mon": "noviembre nov sábado sáb",
	} {
		if got := es.format(tm, layout); got != want {
			t.Errorf("format(%q) = %q, want %q", layout, got, want)
		}
	}
	if got := english.format(tm, english.Date); got != "Saturday 28 November" {
		t.Errorf("english date %q", got)
	}
	if _, err := parseLocaleData([]byte("weekdays: [a]\n")); err == nil {
		t.Error("accepted a locale with one weekday")
	}
}

func TestCandidates(t *testing.T) {
	for in, want := range map[string][]string{
		"es-MX": {"es-MX", "es-419", "es", "en"},
		"es":    {"es", "en"},
		"en-GB": {"en-GB", "en-001", "en"},
		"fr-FR": {"fr-FR", "fr", "en"},
		"":      {"en"},
		"!!":    {"en"},
		"zz":    {"en"}, // well-formed, known to no registry: events accept it
		"zz-ZZ": {"en"},
	} {
		if got := candidates(in); !reflect.DeepEqual(got, want) {
			t.Errorf("candidates(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestSMSInfo(t *testing.T) {
	for _, tc := range []struct {
		text     string
		enc      string
		units    int
		segments int
		bad      rune
		at       int
	}{
		{"", GSM7, 0, 0, 0, 0},
		{strings.Repeat("a", 160), GSM7, 160, 1, 0, 0},
		{strings.Repeat("a", 161), GSM7, 161, 2, 0, 0},
		{strings.Repeat("a", 306), GSM7, 306, 2, 0, 0},
		{strings.Repeat("a", 307), GSM7, 307, 3, 0, 0},
		{strings.Repeat("€", 80), GSM7, 160, 1, 0, 0}, // extension table: two septets each
		{strings.Repeat("a", 69) + "✓", UCS2, 70, 1, '✓', 70},
		{strings.Repeat("a", 70) + "✓", UCS2, 71, 2, '✓', 71},
		{"ok 💪", UCS2, 5, 1, '💪', 4}, // a surrogate pair counts two
		{strings.Repeat("ж", 134), UCS2, 134, 2, 'ж', 1},
		{strings.Repeat("ж", 135), UCS2, 135, 3, 'ж', 1},
	} {
		got := SMS(tc.text)
		if got.Encoding != tc.enc || got.Units != tc.units || got.Segments != tc.segments || got.NonGSM != tc.bad || got.NonGSMAt != tc.at {
			t.Errorf("SMS(%.20q…) = %+v, want %s %d units %d segments %q at %d", tc.text, got, tc.enc, tc.units, tc.segments, tc.bad, tc.at)
		}
	}
	if SMSBudget(GSM7, 1) != 160 || SMSBudget(GSM7, 3) != 459 || SMSBudget(UCS2, 1) != 70 || SMSBudget(UCS2, 2) != 134 {
		t.Error("SMSBudget")
	}
}

// FuzzSMS holds SMS to its invariants for any text (SMS bodies carry
// producer data): the units fit the segments, and the encoding is GSM-7
// exactly when no character is outside it.
func FuzzSMS(f *testing.F) {
	f.Add("Good news Oliver! A spot opened up.")
	f.Add("Beşiktaş ✓ 💪 €€ {}")
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, s string) {
		info := SMS(s)
		single, part := 160, 153
		if info.Encoding == UCS2 {
			single, part = 70, 67
		}
		switch {
		case info.Units == 0 && info.Segments != 0,
			info.Segments == 1 && info.Units > single,
			info.Segments > 1 && (info.Units > part*info.Segments || info.Units <= part*(info.Segments-1)):
			t.Fatalf("%q: %+v", s, info)
		}
		if (info.Encoding == GSM7) != (info.NonGSMAt == 0) {
			t.Fatalf("%q: %+v", s, info)
		}
		if info.NonGSMAt != 0 && ([]rune(s))[info.NonGSMAt-1] != info.NonGSM {
			t.Fatalf("%q: NonGSMAt %d does not hold %q", s, info.NonGSMAt, info.NonGSM)
		}
	})
}

func TestEscapingProblems(t *testing.T) {
	data := hostileData(notification.DataOf(map[string]string{
		"class_name": "Spin", "class_starts_at": "2026-11-23T07:00:00Z", "class_capacity": "20",
		"recipient_locale": "en-GB", "local_time_zone": "Europe/London", "flag": "true", "reason": "",
	}))
	if !strings.HasSuffix(data.Get("class_name"), hostile) {
		t.Errorf("free text not made hostile: %q", data.Get("class_name"))
	}
	for _, k := range []string{"class_starts_at", "class_capacity", "recipient_locale", "local_time_zone", "flag", "reason"} {
		if strings.Contains(data.Get(k), hostileMarkup) {
			t.Errorf("%s made hostile: %q", k, data.Get(k))
		}
	}
	leaky := &channels.Message{HTML: "<p>Spin" + hostileMarkup + "</p>", Subject: "a\r\nBcc: x"}
	if got := escapingProblems(leaky); len(got) != 2 {
		t.Errorf("leaky message: %v", got)
	}
	safe := &channels.Message{HTML: "<p>Spin&lt;hx-probe&gt;</p>", Subject: "Spin<hx-probe> Bcc: x"}
	if got := escapingProblems(safe); len(got) != 0 {
		t.Errorf("escaped message: %v", got)
	}
}

// FuzzFirstName holds firstName to what it replaced: the first of
// strings.Fields.
func FuzzFirstName(f *testing.F) {
	for _, s := range []string{"", " ", "Emma Clarke", "  Zoë\u00a0Ng", "\u0085Ana\tDíaz", "\xffx y", "Łukasz", "a\u2028b", "\u3000李 雷"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := ""
		if fs := strings.Fields(name); len(fs) > 0 {
			want = fs[0]
		}
		if got := firstName(name); got != want {
			t.Fatalf("firstName(%q) = %q, want %q", name, got, want)
		}
	})
}

// flattenBefore is flatten as it was, tracking every key's depth, for
// TestFlattenAsBefore.
func flattenBefore(data map[string]any) map[string]string {
	out := make(map[string]string, 32)
	depth := map[string]int{}
	var walk func(prefix string, m map[string]any, d int)
	walk = func(prefix string, m map[string]any, d int) {
		for k, v := range m {
			key := k
			if prefix != "" {
				key = prefix + "_" + k
			}
			var s string
			switch v := v.(type) {
			case string:
				s = v
			case json.Number:
				s = v.String()
			case float64:
				s = strconv.FormatFloat(v, 'f', -1, 64)
			case bool:
				s = strconv.FormatBool(v)
			case map[string]any:
				if k != "preferences" {
					walk(key, v, d+1)
				}
				continue
			default:
				continue
			}
			if old, ok := depth[key]; ok && old <= d {
				continue
			}
			out[key] = s
			depth[key] = d
		}
	}
	walk("", data, 0)
	return out
}

// TestFlattenAsBefore holds flatten, which joins keys in one buffer and
// walks breadth first, to what it replaced, on data whose paths do not
// collide at one depth (where either kept whichever came first): empty
// keys, preferences, deep and wide nesting (more objects and values than
// flatten has room for on the stack), keys longer than its buffer, a
// deeper path that flattens to a shallower one's key.
func TestFlattenAsBefore(t *testing.T) {
	long := strings.Repeat("k", 600)
	deep := map[string]any{"leaf": "deep"}
	for i := range 12 {
		deep = map[string]any{fmt.Sprintf("d%d", i): deep, fmt.Sprintf("v%d", i): json.Number(strconv.Itoa(i))}
	}
	wide := map[string]any{}
	for i := range 100 {
		wide[fmt.Sprintf("w%03d", i)] = map[string]any{"x": i%2 == 0, "y": float64(i) / 4}
	}
	for _, data := range []map[string]any{
		{},
		{"a": "1", "b": json.Number("2.50"), "c": true, "d": nil, "e": []any{"x"}, "f": 0.5},
		{"": map[string]any{"a": "under an empty key", "": map[string]any{"b": "two empty keys"}}, "c": ""},
		{"class": map[string]any{"name": "Spin", "preferences": map[string]any{"email": true}, "instructor": map[string]any{"name": "Priya"}},
			"preferences": map[string]any{"sms": false}},
		{"class_name": "top", "class": map[string]any{"name": "nested", "instructor_name": "shallow", "instructor": map[string]any{"name": "deeper"}}},
		{long: map[string]any{long: "long", "x": map[string]any{long: "longer"}}},
		{"deep": deep},
		{"wide": wide},
	} {
		if got, want := notification.NewData(flatten(data, 0)).Map(), flattenBefore(data); !reflect.DeepEqual(got, want) {
			t.Errorf("flatten(%v)\n= %v\nwant %v", data, got, want)
		}
	}
}
