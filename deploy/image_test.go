package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dockerfileBuild returns the environment and arguments of the Dockerfile's
// `RUN ... go build ...` line, and the distroless stage's USER.
func dockerfileBuild(t *testing.T) (env, args []string, user, base string) {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build"):
			if args != nil {
				t.Fatal("Dockerfile has two go build lines")
			}
			for _, w := range shellWords(t, strings.TrimPrefix(line, "RUN ")) {
				if args == nil && strings.Contains(w, "=") {
					env = append(env, w)
				} else {
					args = append(args, w)
				}
			}
		case strings.HasPrefix(line, "FROM "):
			base = strings.Fields(line)[1]
		case strings.HasPrefix(line, "USER "):
			user = strings.TrimPrefix(line, "USER ")
		}
	}
	if len(args) < 2 || args[0] != "go" || args[1] != "build" {
		t.Fatalf("no `RUN [VAR=value ...] go build ...` line in the Dockerfile (got %q)", args)
	}
	return env, args, user, base
}

// shellWords splits a command line the way sh would for the plain words
// and single quotes a Dockerfile RUN line uses; anything fancier fails.
func shellWords(t *testing.T, s string) []string {
	var out []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			w.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				out = append(out, w.String())
				w.Reset()
				inWord = false
			}
		case strings.ContainsRune("\"$`\\;&|<>(){}*?", r):
			t.Fatalf("Dockerfile build line uses %q; keep it to words and single quotes so this test can run it", r)
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatal("unterminated quote in the Dockerfile build line")
	}
	if inWord {
		out = append(out, w.String())
	}
	return out
}

// TestImageBinary builds herald exactly as the Dockerfile does (docker
// build cannot run here) and checks what the image relies on: a static
// binary (no ELF interpreter, no shared libraries) that runs on
// distroless/static, stripped, with no build paths in it, as a non-root
// user.
func TestImageBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	env, args, user, base := dockerfileBuild(t)
	if !strings.Contains(strings.Join(env, " "), "CGO_ENABLED=0") {
		t.Errorf("Dockerfile build does not set CGO_ENABLED=0: %v", env)
	}
	for _, flag := range []string{"-trimpath", "-ldflags"} {
		if !strings.Contains(strings.Join(args, " "), flag) {
			t.Errorf("Dockerfile build lacks %s", flag)
		}
	}
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("final stage FROM %s, want distroless/static or scratch", base)
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("image USER %q, want a non-root uid", user)
	}

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "herald")
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			args[i+1] = bin
		}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	t.Logf("%s (in %s) %s", strings.Join(env, " "), root, strings.Join(args, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has an ELF interpreter (PT_INTERP): it is dynamically linked and will not start on distroless/static")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("binary has a dynamic section")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("binary keeps section %s: not built with -ldflags '-s -w'", s.Name)
		}
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(root+"/")) {
		t.Errorf("binary contains the build path %s: not built with -trimpath", root)
	}
	if fi, _ := os.Stat(bin); fi != nil {
		t.Logf("static binary: %.1f MiB", float64(fi.Size())/(1<<20))
	}

	// It runs: --help prints the usage and exits 0, and a bad role stops
	// with one line, both with an empty environment as in the image.
	help := exec.Command(bin, "--help")
	help.Env = []string{}
	out, err := help.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "herald run") {
		t.Errorf("herald --help: %v\n%s", err, out)
	}
	bad := exec.Command(bin, "run", "--role", "fax")
	bad.Env = []string{}
	out, err = bad.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Errorf("herald run --role fax: %v, want exit 2 and one line\n%s", err, out)
	}
}
