package templates_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/templates"
)

// configMapDir lays a tree out as a Kubernetes ConfigMap volume does: the
// files live in a timestamped folder, ..data links to it, and every
// top-level entry is a link through ..data. update swaps ..data to a new
// folder atomically, as the kubelet does.
type configMapDir struct {
	t    *testing.T
	root string
	n    int
}

func newConfigMap(t *testing.T, files map[string]string) *configMapDir {
	c := &configMapDir{t: t, root: t.TempDir()}
	c.update(files)
	return c
}

func (c *configMapDir) update(files map[string]string) {
	c.t.Helper()
	c.n++
	ts := filepath.Join(c.root, "..2026_11_23_07_00_0"+string(rune('0'+c.n)))
	for p, content := range files {
		full := filepath.Join(ts, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			c.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	tmp := filepath.Join(c.root, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.root, "..data")); err != nil {
		c.t.Fatal(err)
	}
	entries, _ := os.ReadDir(ts)
	for _, e := range entries {
		link := filepath.Join(c.root, e.Name())
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", e.Name()), link); err != nil {
			c.t.Fatal(err)
		}
	}
}

func TestLoadDirFollowsConfigMapLinks(t *testing.T) {
	cm := newConfigMap(t, newTypeTree())
	s, err := templates.LoadDir(cm.root)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Known(newType) || !strings.HasPrefix(s.Version(), "sha256:") {
		t.Fatalf("types %v version %q", s.EventTypes(), s.Version())
	}
	// The same files in a plain directory have the same version.
	plain, err := templates.LoadDir(writeTree(t, newTypeTree()))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Version() != s.Version() {
		t.Errorf("version %s in a ConfigMap, %s in a plain directory", s.Version(), plain.Version())
	}
}

func TestReload(t *testing.T) {
	tree := newTypeTree()
	cm := newConfigMap(t, tree)
	first, err := templates.LoadDir(cm.root)
	if err != nil {
		t.Fatal(err)
	}
	live := templates.NewLive(first)

	if _, err := live.Reload(cm.root); !errors.Is(err, templates.ErrUnchanged) {
		t.Fatalf("unchanged directory: %v", err)
	}

	// A valid change is swapped in.
	tree[newType+"/sms.en.txt"] = "{{upper .membership_plan}} ends soon. Renew at {{.branch_name}}."
	cm.update(tree)
	r, err := live.Reload(cm.root)
	if err != nil || r.Err != nil || r.Previous != first.Version() || r.Version == first.Version() {
		t.Fatalf("valid change: %+v %v", r, err)
	}
	second := live.Current()
	if second.Version() != r.Version {
		t.Fatalf("serving %s, reloaded %s", second.Version(), r.Version)
	}

	// An invalid change is refused with every problem; the set keeps
	// serving; the same refused version is reported once.
	tree[newType+"/sms.en.txt"] = "{{upper .membership_plan}} ends {{.membership_colour}}."
	tree[newType+"/email.en.subject.txt"] = "Renew {{.membership_plan}}\nnow"
	tree[newType+"/email.en.txt"] = "{{/* nothing yet */}}"
	cm.update(tree)
	r, err = live.Reload(cm.root)
	if err != nil || r.Err == nil {
		t.Fatalf("invalid change accepted: %+v %v", r, err)
	}
	if live.Current() != second {
		t.Fatal("a refused change replaced the set")
	}
	var files []string
	for _, p := range r.Problems {
		files = append(files, p.String())
	}
	got := strings.Join(files, "\n")
	for _, want := range []string{newType + "/email.en.txt:1: with samples/one.json: renders an empty text part", newType + `/sms.en.txt:1:34: with samples/one.json: missing data key "membership_colour"`} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if _, err := live.Reload(cm.root); !errors.Is(err, templates.ErrUnchanged) {
		t.Errorf("a refused version was reported again: %v", err)
	}

	// A removed directory is refused, once.
	if err := os.RemoveAll(cm.root); err != nil {
		t.Fatal(err)
	}
	if r, err := live.Reload(cm.root); err != nil || r.Err == nil || live.Current() != second {
		t.Errorf("missing directory: %+v %v", r, err)
	}
	if _, err := live.Reload(cm.root); !errors.Is(err, templates.ErrUnchanged) {
		t.Errorf("missing directory reported twice: %v", err)
	}
}

// TestLiveSwapUnderLoad plans and renders from many goroutines while the
// set is replaced; with -race this checks that readers and the swap share
// nothing unsynchronised, and every render sees one whole set.
func TestLiveSwapUnderLoad(t *testing.T) {
	tree := newTypeTree()
	dir := writeTree(t, tree)
	s, err := templates.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	live := templates.NewLive(s)
	ev, err := events.Decode([]byte(newTypeEvent))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ns, err := live.Plan(ev, planTime)
				if err != nil {
					t.Error(err)
					return
				}
				for i := range ns {
					m, err := live.Render(&ns[i])
					if err != nil {
						t.Error(err)
						return
					}
					if m.Channel == "sms" && !strings.HasPrefix(m.Text, "GOLD") {
						t.Errorf("sms from neither version: %q", m.Text)
					}
				}
			}
		}()
	}
	for i := range 20 {
		tree[newType+"/sms.en.txt"] = "{{upper .membership_plan}} ends soon (" + string(rune('a'+i)) + ")."
		for p, c := range tree {
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if r, err := live.Reload(dir); err != nil || r.Err != nil {
			t.Fatalf("reload %d: %+v %v", i, r, err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestHiddenAndBackupFilesAreIgnored(t *testing.T) {
	tree := newTypeTree()
	tree[newType+"/.sms.en.txt.swp"] = "\x00binary"
	tree[newType+"/sms.en.txt~"] = "{{ broken"
	tree[newType+"/samples/.one.json.swp"] = "\x00"
	tree[".git/config"] = "x"
	dir := writeTree(t, tree)
	a, err := templates.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := templates.LoadDir(writeTree(t, newTypeTree()))
	if err != nil {
		t.Fatal(err)
	}
	if a.Version() != b.Version() {
		t.Errorf("editor files changed the version: %s vs %s", a.Version(), b.Version())
	}
}

// TestLoadDirFollowsLinkedFolders loads a tree whose event type folder is
// a symbolic link (without a ConfigMap's ..data), as a checkout that links
// shared folders would have.
func TestLoadDirFollowsLinkedFolders(t *testing.T) {
	elsewhere := writeTree(t, newTypeTree())
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(elsewhere, newType), filepath.Join(dir, newType)); err != nil {
		t.Fatal(err)
	}
	s, err := templates.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Known(newType) {
		t.Fatalf("linked folder not loaded: %v", s.EventTypes())
	}
}

// TestEmbeddedAndSourceTreeShareAVersion: the version hashes only what
// Load reads, so the binary's templates and the same files in a directory
// (a checkout, a ConfigMap made from it) report the same version.
func TestEmbeddedAndSourceTreeShareAVersion(t *testing.T) {
	dir, err := templates.LoadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	if e := embedded(t); e.Version() != dir.Version() || e.Version() == "" {
		t.Errorf("embedded %q, source tree %q", e.Version(), dir.Version())
	}
}
