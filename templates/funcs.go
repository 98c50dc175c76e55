package templates

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// funcs returns the template functions for templates written in loc's
// language. The set is small on purpose; README.md documents each one.
//
//	upper S, lower S             case mapping
//	date LAYOUT TIME ZONE        an RFC 3339 TIME in IANA ZONE with a Go layout, in this language
//	plural N ONE OTHER           ONE when the number N is 1, else OTHER
//	default FALLBACK VALUE       VALUE, or FALLBACK when VALUE is empty
//	json VALUE                   VALUE as JSON (a string quoted and escaped), for JSON parts such as webhook data
func funcs(loc *localeData) map[string]any {
	return map[string]any{
		"upper": strings.ToUpper,
		"lower": strings.ToLower,
		"date": func(layout, value, zone string) (string, error) {
			t, err := time.Parse(time.RFC3339, value)
			if err != nil {
				return "", fmt.Errorf("date: %q is not an RFC 3339 time", value)
			}
			z := loadZone(zone)
			if z == nil {
				return "", fmt.Errorf("date: %q is not a time zone", zone)
			}
			return loc.format(t.In(z), layout), nil
		},
		"plural": func(n any, one, other string) (string, error) {
			var v int64
			switch n := n.(type) {
			case string:
				f, err := strconv.ParseFloat(n, 64)
				if err != nil {
					return "", fmt.Errorf("plural: %q is not a number", n)
				}
				v = int64(f)
				if float64(v) != f {
					return other, nil
				}
			case int:
				v = int64(n)
			default:
				return "", fmt.Errorf("plural: %v is not a number", n)
			}
			if v == 1 {
				return one, nil
			}
			return other, nil
		},
		"default": func(fallback, value string) string {
			if value == "" {
				return fallback
			}
			return value
		},
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
	}
}
