package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/gymhq/herald/config"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md from config.Markdown")

// TestDocsInSync keeps docs/configuration.md generated from the registry.
func TestDocsInSync(t *testing.T) {
	path := filepath.Join("..", "docs", "configuration.md")
	want := config.Markdown()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; run go test ./config -update", err)
	}
	if string(got) != want {
		t.Errorf("%s is out of date with config/registry.go; run go test ./config -update", path)
	}
}
