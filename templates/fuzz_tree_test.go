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
	// The shipped tree is this package's directory, less Go files and
	// test data.
	base := fstest.MapFS{}
	dir := os.DirFS(".")
	err := fs.WalkDir(dir, ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && p != "." && (p == "testdata" || strings.HasPrefix(p, ".")):
			return fs.SkipDir
		case d.IsDir() || !strings.Contains(p, "/"):
			return nil // folders, and top-level files (Go sources, README)
		}
		b, err := fs.ReadFile(dir, p)
		base[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
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
