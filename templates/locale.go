package templates

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/text/language"
	"gopkg.in/yaml.v3"
)

// fallbackLocale is the locale every channel of every rule must have, and
// the last step of locale resolution.
const fallbackLocale = "en"

// localeData is what a language needs for the derived date and time values
// and the date function: day and month names, and default layouts. It comes
// from locales/<tag>.yaml, so adding a language needs no Go code; English is
// built in.
type localeData struct {
	Weekdays      []string `yaml:"weekdays"`       // Sunday first, 7 names
	WeekdaysShort []string `yaml:"weekdays_short"` // Sunday first, 7 names
	Months        []string `yaml:"months"`         // January first, 12 names
	MonthsShort   []string `yaml:"months_short"`   // January first, 12 names
	Date          string   `yaml:"date"`           // Go layout for <prefix>_date
	Time          string   `yaml:"time"`           // Go layout for <prefix>_start_time, <prefix>_end_time
}

var english = &localeData{
	Weekdays:      []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"},
	WeekdaysShort: []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"},
	Months: []string{"January", "February", "March", "April", "May", "June", "July",
		"August", "September", "October", "November", "December"},
	MonthsShort: []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"},
	Date:        "Monday 2 January",
	Time:        "15:04",
}

// parseLocaleData parses locales/<tag>.yaml.
func parseLocaleData(b []byte) (*localeData, error) {
	var d localeData
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%s", yamlError(err))
	}
	for _, c := range []struct {
		name string
		l    []string
		n    int
	}{{"weekdays", d.Weekdays, 7}, {"weekdays_short", d.WeekdaysShort, 7}, {"months", d.Months, 12}, {"months_short", d.MonthsShort, 12}} {
		if len(c.l) != c.n {
			return nil, fmt.Errorf("%s has %d names, want %d", c.name, len(c.l), c.n)
		}
	}
	if d.Date == "" || d.Time == "" {
		return nil, fmt.Errorf("date and time layouts are required")
	}
	return &d, nil
}

// format formats t with a Go layout, putting this language's names where the
// layout has Monday, Mon, January or Jan. The layout is split at those
// tokens, and the pieces between are formatted by package time, so every
// other layout element behaves as documented there.
func (d *localeData) format(t time.Time, layout string) string {
	var buf [64]byte // the result is built here and copied out once
	b := buf[:0]
	for layout != "" {
		i, tok := nextNameToken(layout)
		if i < 0 {
			b = t.AppendFormat(b, layout)
			break
		}
		if i > 0 {
			b = t.AppendFormat(b, layout[:i])
		}
		switch tok {
		case "Monday":
			b = append(b, d.Weekdays[t.Weekday()]...)
		case "Mon":
			b = append(b, d.WeekdaysShort[t.Weekday()]...)
		case "January":
			b = append(b, d.Months[t.Month()-1]...)
		case "Jan":
			b = append(b, d.MonthsShort[t.Month()-1]...)
		}
		layout = layout[i+len(tok):]
	}
	return string(b)
}

// nextNameToken finds the first day or month name token in a layout.
func nextNameToken(layout string) (int, string) {
	for i := 0; i < len(layout); i++ {
		switch {
		case strings.HasPrefix(layout[i:], "Monday"):
			return i, "Monday"
		case strings.HasPrefix(layout[i:], "Mon"):
			return i, "Mon"
		case strings.HasPrefix(layout[i:], "January"):
			return i, "January"
		case strings.HasPrefix(layout[i:], "Jan"):
			return i, "Jan"
		}
	}
	return -1, ""
}

// canonicalLocale returns the canonical form of a BCP 47 tag ("es_mx" →
// "es-MX"), and false when s is not a well-formed tag.
func canonicalLocale(s string) (string, bool) {
	t, err := language.Parse(s)
	if err != nil || t == language.Und {
		return "", false
	}
	return t.String(), true
}

// candidates is the locale resolution order for a recipient locale: the tag
// itself, its CLDR parents (es-MX → es-419), its base language (es), then
// en. Results are cached: recipients share few distinct locales, and Render
// is on the hot path.
func candidates(locale string) []string {
	if v, ok := candidateCache.Load(locale); ok {
		return v.([]string)
	}
	var out []string
	add := func(s string) {
		for _, o := range out {
			if o == s {
				return
			}
		}
		out = append(out, s)
	}
	if t, err := language.Parse(locale); err == nil && t != language.Und {
		add(t.String())
		for p := t.Parent(); p != language.Und; p = p.Parent() {
			add(p.String())
		}
		if b, conf := t.Base(); conf != language.No {
			add(b.String())
		}
	}
	add(fallbackLocale)
	if candidateCacheSize.Add(1) <= maxCachedLocales {
		// Copies: locale may be a substring of a whole record, and so may
		// the tags language.Parse derives from it (their extensions).
		for i := range out {
			out[i] = strings.Clone(out[i])
		}
		candidateCache.Store(strings.Clone(locale), out)
	}
	return out
}

// maxCachedLocales bounds the cache so that hostile locale strings cannot
// grow it without limit; past it, resolution is computed each time.
const maxCachedLocales = 4096

var (
	candidateCache     sync.Map // string → []string
	candidateCacheSize atomic.Int64
)
