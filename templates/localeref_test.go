package templates

import (
	"strings"
	"testing"
	"time"
)

// formatRef is localeData.format as it was before it appended into one
// buffer: the reference TestFormatMatchesReference and FuzzFormat hold the
// faster one to.
func formatRef(d *localeData, t time.Time, layout string) string {
	var b strings.Builder
	for layout != "" {
		i, tok := nextNameToken(layout)
		if i < 0 {
			b.WriteString(t.Format(layout))
			break
		}
		if i > 0 {
			b.WriteString(t.Format(layout[:i]))
		}
		switch tok {
		case "Monday":
			b.WriteString(d.Weekdays[t.Weekday()])
		case "Mon":
			b.WriteString(d.WeekdaysShort[t.Weekday()])
		case "January":
			b.WriteString(d.Months[t.Month()-1])
		case "Jan":
			b.WriteString(d.MonthsShort[t.Month()-1])
		}
		layout = layout[i+len(tok):]
	}
	return b.String()
}

// formatLocales are the shipped languages and the built-in English.
func formatLocales(t testing.TB) []*localeData {
	s, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	var out []*localeData
	for _, tag := range sortedKeys(s.langs) {
		out = append(out, s.langs[tag])
	}
	return append(out, english)
}

func TestFormatMatchesReference(t *testing.T) {
	layouts := []string{"", "x", "Monday 2 January", "Mon 2 Jan 2006, 15:04", "Monday 2 de January", "15:04", "3:04PM",
		"2006-01-02T15:04:05.000000000Z07:00 MST -0700 Z0700 _2 __2 002", "January Jan Monday Mon Jan",
		strings.Repeat("Monday 2 January 2006 15:04:05 ", 8), "MonJanuaryJanMonday", "Mo Ja Janu"}
	for _, loc := range formatLocales(t) {
		for _, layout := range layouts {
			for m := range 12 {
				for day := 20; day < 27; day++ {
					for _, z := range []*time.Location{time.UTC, loadZone("Europe/Madrid"), loadZone("America/Sao_Paulo")} {
						tm := time.Date(2026, time.Month(m+1), day, day, 7*day, day, 123456789*day, time.UTC).In(z)
						if got, want := loc.format(tm, layout), formatRef(loc, tm, layout); got != want {
							t.Fatalf("format(%q) = %q, reference %q", layout, got, want)
						}
					}
				}
			}
		}
	}
}

func FuzzFormat(f *testing.F) {
	f.Add("Monday 2 January", int64(1795417200))
	f.Add("Mon Jan _2 15:04:05 MST 2006", int64(-1))
	f.Add(strings.Repeat("January", 20), int64(0))
	locs := formatLocales(f)
	f.Fuzz(func(t *testing.T, layout string, sec int64) {
		tm := time.Unix(sec, sec%1000000000).In(loadZone("Europe/Madrid"))
		for _, loc := range locs {
			if got, want := loc.format(tm, layout), formatRef(loc, tm, layout); got != want {
				t.Fatalf("format(%q) = %q, reference %q", layout, got, want)
			}
		}
	})
}
