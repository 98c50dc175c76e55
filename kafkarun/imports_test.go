package kafkarun_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// exceptions may import kafka-go outside kafkarun, with the reason.
var exceptions = map[string]string{
	// The bench's naive baseline is the loop a team writes first with
	// kafka-go's Reader and Writer directly; going through kafkarun would
	// make it herald.
	"bench": "the naive baseline",
}

// TestOnlyKafkarunImportsKafkaGo keeps Kafka's client behind kafkarun: a
// non-test file elsewhere that imports kafka-go fails here, by name.
func TestOnlyKafkarunImportsKafkaGo(t *testing.T) {
	root := filepath.Join("..")
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			if rel == "deploy" || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir := filepath.Dir(rel)
		if dir == "kafkarun" || exceptions[dir] != "" {
			return nil
		}
		checked++
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "github.com/segmentio/kafka-go") {
				t.Errorf("%s imports %s; only kafkarun talks to Kafka's client", rel, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked %d files; the walk is not reading the module", checked)
	}
}
