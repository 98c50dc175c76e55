package templates

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing/fstest"
)

// A snapshot is a template tree read into memory in one pass, so what is
// validated, hashed and served is one consistent version even while the
// directory changes underneath (a ConfigMap update, an editor saving).
type treeSnapshot struct {
	fs      fstest.MapFS
	version string
}

// load loads the snapshot as Load does, versioned by its hash.
func (t *treeSnapshot) load() (*Set, error) {
	s, err := Load(t.fs)
	if err != nil {
		return nil, err
	}
	s.version = t.version
	return s, nil
}

// Limits on a tree read from disk, so a mount pointed at the wrong
// directory fails with a clear error instead of filling memory.
const (
	maxTreeFiles = 5000
	maxTreeBytes = 32 << 20
	maxTreeDepth = 4 // type/samples/file is 3
)

// snapshot reads the parts of fsys that Load reads — locales/, every
// top-level folder that is not hidden, "_"-prefixed or testdata, and the
// top-level files channels read (webhooks.yaml and the secret files it
// names), notes and backups left out — following symbolic links, and
// hashes them, so a changed subscription or secret is a new version.
func snapshot(fsys fs.FS) (*treeSnapshot, error) {
	snap := fstest.MapFS{}
	total := 0
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := e.Name()
			p := path.Join(dir, name)
			if dir == "." && (name == "testdata" || strings.HasPrefix(name, "_")) || strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
				continue
			}
			if isDir(fsys, p, e) {
				if depth >= maxTreeDepth {
					return fmt.Errorf("%s: folders nest deeper than a template tree does (a link loop?)", p)
				}
				snap[p] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
				if err := walk(p, depth+1); err != nil {
					return err
				}
				continue
			}
			if dir == "." && (ignored(name) || strings.HasSuffix(name, ".go")) {
				// Notes are not part of the tree, nor is the Go source of
				// this repository's templates/ folder; a channel's file
				// (webhooks.yaml) and the files it names are.
				continue
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			total += len(b)
			if len(snap) > maxTreeFiles || total > maxTreeBytes {
				return fmt.Errorf("more than %d files or %d MiB: not a template tree", maxTreeFiles, maxTreeBytes>>20)
			}
			snap[p] = &fstest.MapFile{Data: b, Mode: 0o644}
		}
		return nil
	}
	if err := walk(".", 0); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	return &treeSnapshot{fs: snap, version: hashTree(snap)}, nil
}

func hashTree(m fstest.MapFS) string {
	names := make([]string, 0, len(m))
	for p, f := range m {
		if !f.Mode.IsDir() {
			names = append(names, p)
		}
	}
	sort.Strings(names)
	h := sha256.New()
	for _, p := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(m[p].Data))
		h.Write(m[p].Data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:12]
}

// LoadDir reads the template tree in dir, following symbolic links (as a
// Kubernetes ConfigMap mount has them), and loads it as Load does. The
// set's Version is the hash of what was read.
func LoadDir(dir string) (*Set, error) {
	snap, err := dirVersion(dir)
	if err != nil {
		return nil, err
	}
	return snap.load()
}

// Inspection is a tree as InspectDir found it: its version, what could be
// loaded, and every problem.
type Inspection struct {
	Version  string
	Set      *Set // nil when no event type loaded
	Problems []Problem
}

// InspectDir reads dir as LoadDir does and inspects it (Inspect). The error
// is for a directory that cannot be read at all.
func InspectDir(dir string) (*Inspection, error) {
	snap, err := dirVersion(dir)
	if err != nil {
		return nil, err
	}
	return inspectSnapshot(snap)
}

// InspectEmbedded inspects the templates compiled into the binary.
func InspectEmbedded() (*Inspection, error) {
	snap, err := snapshot(shipped)
	if err != nil {
		return nil, err
	}
	return inspectSnapshot(snap)
}

func inspectSnapshot(snap *treeSnapshot) (*Inspection, error) {
	s, probs, err := Inspect(snap.fs)
	if err != nil {
		return nil, err
	}
	if s != nil {
		s.version = snap.version
	}
	return &Inspection{Version: snap.version, Set: s, Problems: probs}, nil
}

// dirVersion reads dir without loading it.
func dirVersion(dir string) (*treeSnapshot, error) { return snapshot(os.DirFS(resolveDataLink(dir))) }

// resolveDataLink returns the folder a Kubernetes ConfigMap mount's ..data
// link points at, when dir is such a mount, so that a snapshot reads one
// version even if the kubelet swaps the link halfway through; otherwise dir.
func resolveDataLink(dir string) string {
	if target, err := filepath.EvalSymlinks(filepath.Join(dir, "..data")); err == nil {
		if fi, err := os.Stat(target); err == nil && fi.IsDir() {
			return target
		}
	}
	return dir
}
