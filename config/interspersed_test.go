package config_test

import (
	"flag"
	"io"
	"slices"
	"testing"

	"github.com/gymhq/herald/config"
)

// Flags are read wherever they stand among the positional arguments,
// including after a positional one that followed another flag (a review
// found herald preferences set P --redis-url X '{json}' --other left the
// last flag unread), and everything after "--" is positional.
func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		pos     []string
		a, b    string
		wantErr bool
	}{
		{[]string{"P", "--a", "x", "{}", "--b", "y"}, []string{"P", "{}"}, "x", "y", false},
		{[]string{"--a", "x", "P"}, []string{"P"}, "x", "", false},
		{[]string{"P", "Q"}, []string{"P", "Q"}, "", "", false},
		{[]string{"P", "--", "--b", "y"}, []string{"P", "--b", "y"}, "", "", false},
		{[]string{"P", "--c"}, nil, "", "", true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		a, b := fs.String("a", "", ""), fs.String("b", "", "")
		pos, err := config.ParseInterspersed(fs, tc.args)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if tc.wantErr {
			continue
		}
		if !slices.Equal(pos, tc.pos) || !slices.Equal(fs.Args(), tc.pos) || *a != tc.a || *b != tc.b {
			t.Errorf("%q: positional %q (Args %q), a %q b %q; want %q, %q, %q", tc.args, pos, fs.Args(), *a, *b, tc.pos, tc.a, tc.b)
		}
	}
}
