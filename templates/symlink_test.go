package templates_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gymhq/herald/templates"
)

// TestLoadConfigMapLayout loads a template tree laid out as the kubelet
// writes a ConfigMap volume: the files in a timestamped folder, ..data a
// symlink to it, and every top-level entry a symlink into ..data.
func TestLoadConfigMapLayout(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "..2026_11_23_07_00_00.000000001")
	if err := os.CopyFS(filepath.Join(data, "templates"), os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(data), filepath.Join(root, "..data")); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if (e.IsDir() && e.Name() != "testdata") || e.Name() == templates.StaffFile || e.Name() == templates.CategoriesFile {
			if err := os.Symlink(filepath.Join("..data", "templates", e.Name()), filepath.Join(root, e.Name())); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	set, err := templates.Load(os.DirFS(root))
	if err != nil {
		t.Fatalf("ConfigMap layout: %v", err)
	}
	emb, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(set.EventTypes()), len(emb.EventTypes()); got != want || got == 0 {
		t.Errorf("loaded %d event types through symlinks, the embedded set has %d (%d folders linked)", got, want, n)
	}
}
