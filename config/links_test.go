package config_test

import (
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// mdLink matches the link targets of Markdown: inline links and images
// [text](target "title"), reference definitions [name]: target, autolinks
// <scheme:…>, and href/src attributes of inline HTML.
var mdLink = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)|(?m)^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)|<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]+)>|(?:href|src)="([^"]+)"`)

// TestMarkdownStaysInRepo: the repository is all a newcomer has. Every
// Markdown file's relative links must resolve to a file or folder inside
// it, and none may point at the design notes that lived beside it
// (../shared), which a clone does not have.
func TestMarkdownStaysInRepo(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".md") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, p := range markdownProblems(root, path, string(b)) {
			t.Errorf("%s: %s", rel, p)
		}
		checked++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 5 {
		t.Fatalf("checked only %d Markdown files under %s", checked, root)
	}
}

// markdownProblems lists the links in doc (the file at path) that leave
// root or do not resolve, and any mention of ../shared at all (a code span
// naming a file is as much a dead end as a link).
func markdownProblems(root, path, doc string) []string {
	var out []string
	if strings.Contains(doc, "../shared") || strings.Contains(doc, "shared/DESIGN.md") {
		out = append(out, "refers to ../shared, which is outside the repository")
	}
	for _, m := range mdLink.FindAllStringSubmatch(doc, -1) {
		target := m[1] + m[2] + m[3] + m[4]
		u, err := url.Parse(target)
		if err != nil {
			out = append(out, "unparsable link "+target)
			continue
		}
		if u.Scheme == "http" || u.Scheme == "https" {
			// The docs are self-contained: the web is named, not linked.
			// Loopback addresses are the dev fleet's own pages.
			if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
				out = append(out, "link "+target+" leaves the repository (name the outside source; do not link it)")
			}
			continue
		}
		if u.Scheme != "" || u.Host != "" || u.Path == "" {
			continue // mail, or an anchor on the same page
		}
		if strings.HasPrefix(u.Path, "/") {
			out = append(out, "absolute link "+target+" (use a path relative to the file)")
			continue
		}
		abs := filepath.Join(filepath.Dir(path), filepath.FromSlash(u.Path))
		if r, err := filepath.Rel(root, abs); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			out = append(out, "link "+target+" leaves the repository")
			continue
		}
		if _, err := os.Stat(abs); err != nil {
			out = append(out, "link "+target+" does not resolve: "+err.Error())
		}
	}
	return out
}

// TestMarkdownProblems checks the checker on the cases it exists for.
func TestMarkdownProblems(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"README.md", "docs/contracts.md"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	doc := filepath.Join(root, "docs", "a.md")
	tests := []struct {
		md   string
		want string // "" is no problem
	}{
		{"see [contracts](contracts.md#2-input) and [home](../README.md)", ""},
		{"[dev page](http://127.0.0.1:8025/) <http://localhost:8025/x> [top](#top) [mail](mailto:a@b.c)", ""},
		{"[the web](https://example.com/x)", "leaves the repository"},
		{"<https://example.com>", "leaves the repository"},
		{"[design](../../shared/DESIGN.md)", "refers to ../shared"},
		{"the format is in `../shared/DESIGN.md` §2", "refers to ../shared"},
		{"[up](../../other-repo/README.md)", "leaves the repository"},
		{"[ref]: ../../x.md", "leaves the repository"},
		{`<a href="../../x.html">x</a>`, "leaves the repository"},
		{"[gone](missing.md)", "does not resolve"},
		{"[abs](/etc/passwd)", "absolute link"},
	}
	for _, tt := range tests {
		got := strings.Join(markdownProblems(root, doc, tt.md), "; ")
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%q: problems %q, want %q", tt.md, got, tt.want)
		}
	}
}
