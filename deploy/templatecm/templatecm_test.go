package templatecm

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestGenerateRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		fs   fstest.MapFS
		want string
	}{
		"empty":            {fstest.MapFS{"README.md": {Data: []byte("x")}}, "no template files"},
		"separator in key": {fstest.MapFS{"gym.x/a__b.txt": {Data: []byte("x")}}, `containing "__"`},
		"bad key char":     {fstest.MapFS{"gym.x/a b.txt": {Data: []byte("x")}}, "not allowed"},
		"too big":          {fstest.MapFS{"gym.x/big.txt": {Data: make([]byte, maxBytes+1)}}, "over the"},
	} {
		_, err := Generate(tc.fs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func TestGenerateSkipsWhatTheLoaderIgnores(t *testing.T) {
	files, err := Generate(fstest.MapFS{
		"set.go":                       {Data: []byte("package templates")},
		"README.md":                    {Data: []byte("# templates")},
		"testdata/golden/x.txt":        {Data: []byte("golden")},
		"gym.x/routing.yaml":           {Data: []byte("rules: []\n")},
		"gym.x/NOTES.md":               {Data: []byte("notes")},
		"gym.x/samples/member-en.json": {Data: []byte("{}")},
		"locales/en.yaml":              {Data: []byte("a: b\n")},
		".git/config":                  {Data: []byte("x")},
	})
	if err != nil {
		t.Fatal(err)
	}
	cm := string(files["templates-configmap.yaml"])
	for _, want := range []string{"gym.x__routing.yaml", "gym.x__samples__member-en.json", "locales__en.yaml"} {
		if !strings.Contains(cm, want) {
			t.Errorf("ConfigMap lacks %s", want)
		}
	}
	for _, not := range []string{"package templates", "golden", "notes", "# templates", ".git"} {
		if strings.Contains(cm, not) {
			t.Errorf("ConfigMap includes %q", not)
		}
	}
	if !strings.Contains(string(files["mount.yaml"]), "path: gym.x/samples/member-en.json") {
		t.Error("mount.yaml does not put the sample back at its path")
	}
}
