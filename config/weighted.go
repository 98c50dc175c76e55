package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Weighted is one provider of a list variable such as HERALD_SMTP_ADDR:
// "value" or "value*weight".
type Weighted struct {
	Value  string
	Weight int
}

// ParseWeighted splits a comma-separated provider list, each entry with an
// optional "*weight" (1 to 1000, default 1). Several providers share the
// channel's traffic by weight and fail over to each other (package
// channels/failover).
func ParseWeighted(s string) ([]Weighted, error) {
	var out []Weighted
	seen := map[string]bool{}
	for i, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		v, w, hasWeight := strings.Cut(e, "*")
		n := 1
		if hasWeight {
			var err error
			if n, err = strconv.Atoi(strings.TrimSpace(w)); err != nil || n < 1 || n > 1000 {
				return nil, fmt.Errorf("entry %d %q: weight %q is not a number in 1..1000", i+1, e, w)
			}
		}
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			return nil, fmt.Errorf("entry %d of %q is empty", i+1, s)
		case seen[v]:
			return nil, fmt.Errorf("%q is listed twice", v)
		}
		seen[v] = true
		out = append(out, Weighted{Value: v, Weight: n})
	}
	return out, nil
}

// weightedList checks a provider list whose every value passes each.
func weightedList(each func(string) error) func(string) error {
	return func(s string) error {
		ws, err := ParseWeighted(s)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if err := each(w.Value); err != nil {
				return err
			}
		}
		return nil
	}
}
