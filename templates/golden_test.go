package templates_test

import (
	"flag"
	"testing"

	"github.com/gymhq/herald/templates"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current templates")

// TestGolden renders every sample of every shipped event type, for each
// recipient, channel and locale, and compares with testdata/golden; it is
// `herald templates test` over the shipped tree. Run
// `go test ./templates -update` after changing copy, and review the diff.
func TestGolden(t *testing.T) {
	s := embedded(t)
	res, err := templates.Golden(s, ".", *update)
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked == 0 {
		t.Fatal("nothing rendered")
	}
	for f, d := range res.Differ {
		t.Errorf("%s:%d differs from the rendered output (run go test -update and review the diff):\n  want %q\n  got  %q", f, d.Line, d.Want, d.Got)
	}
	for _, f := range res.Missing {
		t.Errorf("%s: missing (run go test -update)", f)
	}
	for _, f := range res.Stale {
		t.Errorf("%s: no longer rendered; run go test -update", f)
	}
	for f, err := range res.Failed {
		t.Errorf("%s: %v", f, err)
	}
	for _, f := range res.Written {
		t.Logf("updated %s", f)
	}
}
