package templates_test

import (
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gymhq/herald/templates"
)

// FuzzTree feeds product-team files of any shape — a routing.yaml, a
// template, a locale — into an otherwise shipped tree: Inspect must not
// panic, every problem must name a file of the tree, and a tree that loads
// must also inspect clean.
func FuzzTree(f *testing.F) {
	base := shippedTree(f)
	routing := string(base["gym.class.reminder/routing.yaml"].Data)
	sms := string(base["gym.class.reminder/sms.en.txt"].Data)
	locale := string(base["locales/es.yaml"].Data)
	f.Add(routing, sms, locale)
	f.Add("notifications:\n  - recipients: member\n    channels: [sms, fax]\n", "{{.nope", "months: [1]\n")
	f.Add("notifications: {", "{{if}}{{end}}", "\t")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, routing, sms, locale string) {
		tree := fstest.MapFS{}
		for k, v := range base {
			tree[k] = v
		}
		tree["gym.class.reminder/routing.yaml"] = &fstest.MapFile{Data: []byte(routing)}
		tree["gym.class.reminder/sms.en.txt"] = &fstest.MapFile{Data: []byte(sms)}
		tree["locales/es.yaml"] = &fstest.MapFile{Data: []byte(locale)}
		_, probs, err := templates.Inspect(tree)
		if err != nil {
			return // the tree as a whole could not be read
		}
		for _, p := range probs {
			if p.File == "" {
				t.Fatalf("problem without a file: %+v", p)
			}
		}
		if _, lerr := templates.Load(tree); (lerr == nil) != (len(probs) == 0) {
			t.Fatalf("Load error %v, but Inspect found %d problems", lerr, len(probs))
		}
	})
}

// shippedTree is a copy of the shipped templates: this package's
// directory, less Go files, the README and test data.
func shippedTree(tb testing.TB) fstest.MapFS {
	tb.Helper()
	base := fstest.MapFS{}
	dir := os.DirFS(".")
	err := fs.WalkDir(dir, ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && p != "." && (p == "testdata" || strings.HasPrefix(p, ".")):
			return fs.SkipDir
		case d.IsDir() || !strings.Contains(p, "/") && !strings.HasSuffix(p, ".yaml"):
			return nil // folders, and top-level files but the tree's own (Go sources, README)
		}
		b, err := fs.ReadFile(dir, p)
		base[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return base
}

// A template that ranges over a number is refused where it is written:
// text/template cannot be interrupted, so {{range 1000000000}} would hold
// every worker that renders it.
func TestRangeOverNumberIsRefused(t *testing.T) {
	for _, tc := range []struct{ file, src string }{
		{"gym.class.reminder/sms.en.txt", "Hi {{.recipient_first_name}}\n{{range 1000000000}}.{{end}}"},
		{"gym.class.reminder/push.es.body.txt", "{{if .class_name}}{{range $i := 3}}x{{end}}{{end}}"},
	} {
		tree := shippedTree(t)
		tree[tc.file] = &fstest.MapFile{Data: []byte(tc.src)}
		_, probs, err := templates.Inspect(tree)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range probs {
			if p.File == tc.file && strings.Contains(p.String(), "ranges over a number") {
				found = true
				if want := strings.Count(tc.src, "\n") + 1; p.Line != want {
					t.Errorf("%s: problem at line %d, want %d", tc.file, p.Line, want)
				}
			}
		}
		if !found {
			t.Errorf("%s: no problem for a range over a number; got %v", tc.file, probs)
		}
	}
}
