package deploy

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestOperationsDoc reads docs/operations.md as a new operator would and
// checks every command and table against the manifests it talks about: the
// namespaces, Secret names and keys, file paths inside the pods,
// Deployments, ScaledObjects, ports and repository paths it names exist in
// the overlays' output.
func TestOperationsDoc(t *testing.T) {
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	prod, dev, secure := build(t, "prod"), build(t, "dev"), build(t, "prod-secure")
	namespaces := map[string]*fleet{}
	for _, f := range []*fleet{prod, dev} {
		for _, ns := range f.namespaces {
			namespaces[ns.Name] = f
		}
	}

	// What the pods actually read: Secret/key → path and variable, in prod
	// and in prod with the kafka-sasl-tls and redis-tls-acl components.
	type mount struct{ path, variable string }
	secrets := map[string]mount{}
	for _, d := range append(slices.Collect(maps.Values(prod.deployments)), slices.Collect(maps.Values(secure.deployments))...) {
		ps := d.Spec.Template.Spec
		c := ps.Containers[0]
		for _, e := range c.Env {
			if s, key := mountedSecret(ps, c, e.Value); s != "" {
				secrets[s+"/"+key] = mount{e.Value, e.Name}
			}
		}
	}

	// Commands in ```sh blocks.
	var cmds []string
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(doc, -1) {
		joined := strings.ReplaceAll(block[1], "\\\n", " ")
		for _, line := range strings.Split(joined, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				cmds = append(cmds, line)
			}
		}
	}
	if len(cmds) < 15 {
		t.Fatalf("found only %d commands in docs/operations.md", len(cmds))
	}
	created := map[string]bool{}
	for _, cmd := range cmds {
		f := prod
		if m := regexp.MustCompile(`kubectl -n (\S+)`).FindStringSubmatch(cmd); m != nil {
			if f = namespaces[m[1]]; f == nil {
				t.Errorf("%q: namespace %s is not one the overlays create", cmd, m[1])
				continue
			}
		}
		if m := regexp.MustCompile(`create secret generic (\S+)\s`).FindStringSubmatch(cmd); m != nil {
			for _, k := range regexp.MustCompile(`--from-file=([^=]+)=`).FindAllStringSubmatch(cmd, -1) {
				if _, ok := secrets[m[1]+"/"+k[1]]; !ok {
					t.Errorf("%q: no pod reads key %s of Secret %s", cmd, k[1], m[1])
				}
				created[m[1]+"/"+k[1]] = true
			}
		}
		for _, m := range regexp.MustCompile(`(?:deployment|deploy)/(herald-[a-z]+)`).FindAllStringSubmatch(cmd, -1) {
			if f.deployments[m[1]] == nil {
				t.Errorf("%q: no Deployment %s", cmd, m[1])
			}
		}
		for _, m := range regexp.MustCompile(`scaledobject (herald-[a-z]+)`).FindAllStringSubmatch(cmd, -1) {
			found := false
			for _, so := range f.scaledObjects {
				found = found || so.Name == m[1]
			}
			if !found {
				t.Errorf("%q: no ScaledObject %s", cmd, m[1])
			}
		}
		if m := regexp.MustCompile(`port-forward \S+ (\d+):(\d+)`).FindStringSubmatch(cmd); m != nil {
			if m[2] != "9090" {
				t.Errorf("%q: herald listens on 9090", cmd)
			}
		}
		if m := regexp.MustCompile(`-l app\.kubernetes\.io/(name|component)=(\S+)`).FindStringSubmatch(cmd); m != nil && m[2] != "<role>" {
			if m[1] == "name" && m[2] != "herald" {
				t.Errorf("%q: pods are labelled app.kubernetes.io/name=herald", cmd)
			}
		}
		// Repository paths the commands read.
		for _, p := range regexp.MustCompile(`\b((?:deploy/(?:overlays|base|components)|events|templates)/[\w./-]+)`).FindAllString(cmd, -1) {
			if _, err := os.Stat(filepath.Join("..", p)); err != nil {
				t.Errorf("%q: %s does not exist", cmd, p)
			}
		}
	}
	for k := range secrets {
		if !created[k] {
			t.Errorf("docs/operations.md never creates Secret key %s, which a pod reads", k)
		}
	}

	// The Secret table: | `herald-redis` | `url` | `/etc/...` | `HERALD_..._FILE` | roles |
	rows := regexp.MustCompile("(?m)^\\| `(herald-[a-z]+)` \\| `([^`]+)` \\| `([^`]+)` \\| `([^`]+)` \\|").FindAllStringSubmatch(doc, -1)
	if len(rows) != len(secrets) {
		t.Errorf("the Secret table has %d rows; the pods read %d Secret keys", len(rows), len(secrets))
	}
	for _, r := range rows {
		m, ok := secrets[r[1]+"/"+r[2]]
		if !ok || m.path != r[3] || m.variable != r[4] {
			t.Errorf("Secret table row %s/%s → %s %s; the pods read %+v", r[1], r[2], r[3], r[4], m)
		}
	}
}
