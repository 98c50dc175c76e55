package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gymhq/herald/deploy/templatecm"
	"github.com/gymhq/herald/templates"
)

// TestTemplatesComponentInSync: components/templates is what the generator
// makes of ../templates today.
func TestTemplatesComponentInSync(t *testing.T) {
	files, err := templatecm.Generate(os.DirFS("../templates"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("components/templates", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("components/templates/%s is out of date with templates/: run `cd deploy && go run ./cmd/templates-configmap` (%v)", name, err)
		}
	}
}

// TestTemplatesFromConfigMap builds the prod overlay with the templates
// component, lays the ConfigMap out as the kubelet does (files in a
// timestamped folder, ..data and every top-level entry symlinks), and
// loads it with herald's own template loader: the mounted tree is the
// shipped one.
func TestTemplatesFromConfigMap(t *testing.T) {
	f := buildDir(t, "testdata/prod-with-templates")
	cm := f.configMaps[templatecm.ConfigMapName]
	if cm == nil {
		t.Fatalf("no ConfigMap %s", templatecm.ConfigMapName)
	}
	for _, role := range roles() {
		d := f.deployment(t, role)
		ps := d.Spec.Template.Spec
		c := ps.Containers[0]
		dir := ""
		for _, e := range c.Env {
			if e.Name == "HERALD_TEMPLATES_DIR" {
				dir = e.Value
			}
		}
		var mounted bool
		for _, m := range c.VolumeMounts {
			for _, v := range ps.Volumes {
				if v.Name == m.Name && m.MountPath == dir && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name && m.SubPath == "" {
					mounted = true
				}
			}
		}
		if dir == "" || !mounted {
			t.Errorf("%s: HERALD_TEMPLATES_DIR=%q is not the ConfigMap's mount (a subPath mount would not see updates)", d.Name, dir)
		}
	}

	// The kubelet's layout of the volume of one pod.
	ps := f.deployment(t, "email").Spec.Template.Spec
	root := t.TempDir()
	data := filepath.Join(root, "..2026_11_23_07_00_00.000000001")
	var top []string
	for _, v := range ps.Volumes {
		if v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
			continue
		}
		if len(v.ConfigMap.Items) != len(cm.Data) {
			t.Errorf("%d items for %d keys", len(v.ConfigMap.Items), len(cm.Data))
		}
		for _, it := range v.ConfigMap.Items {
			content, ok := cm.Data[it.Key]
			if !ok {
				t.Fatalf("item key %s not in the ConfigMap", it.Key)
			}
			p := filepath.Join(data, filepath.FromSlash(it.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(it.Path, "/")
			if !slices.Contains(top, first) {
				top = append(top, first)
			}
		}
	}
	if err := os.Symlink(filepath.Base(data), filepath.Join(root, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, name := range top {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	set, err := templates.Load(os.DirFS(root))
	if err != nil {
		t.Fatalf("herald cannot load the mounted templates: %v", err)
	}
	emb, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(set.EventTypes(), emb.EventTypes()) {
		t.Errorf("mounted event types %v, shipped %v", set.EventTypes(), emb.EventTypes())
	}
}
