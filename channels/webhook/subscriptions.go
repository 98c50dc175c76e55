package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FileName is the subscriptions file at the top of the template tree,
// checked and hot-reloaded with the templates.
const FileName = "webhooks.yaml"

// Subscription is one endpoint and the event types it receives.
type Subscription struct {
	ID         string
	URL        string
	EventTypes []string
	// Keys are the secrets' HMAC keys: every delivery is signed with each,
	// so a receiver rotating its secret accepts the old and the new.
	Keys [][]byte
}

// Subscriptions are a tree's webhooks.yaml. The zero value and nil have
// none.
type Subscriptions struct {
	byID   map[string]*Subscription
	byType map[string][]string
}

// For returns the ids of the subscriptions to eventType, sorted.
func (s *Subscriptions) For(eventType string) []string {
	if s == nil {
		return nil
	}
	return s.byType[eventType]
}

// Lookup returns the subscription with id, or nil.
func (s *Subscriptions) Lookup(id string) *Subscription {
	if s == nil {
		return nil
	}
	return s.byID[id]
}

// Len is the number of subscriptions.
func (s *Subscriptions) Len() int {
	if s == nil {
		return 0
	}
	return len(s.byID)
}

var (
	idRE        = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	eventTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// maxFile bounds webhooks.yaml and each secret file.
const maxFile = 1 << 20

type fileYAML struct {
	Subscriptions []struct {
		ID         string   `yaml:"id"`
		URL        string   `yaml:"url"`
		SecretFile string   `yaml:"secret_file"`
		EventTypes []string `yaml:"event_types"`
	} `yaml:"subscriptions"`
}

// Load reads FileName at the top of fsys; a tree without one has no
// subscriptions. A secret_file is read from fsys when relative (a file
// beside the templates) and from the local file system when absolute (a
// mounted Secret, as production keeps them).
func Load(fsys fs.FS) (*Subscriptions, error) {
	b, err := fs.ReadFile(fsys, FileName)
	if errors.Is(err, fs.ErrNotExist) {
		return &Subscriptions{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	return Parse(b, func(p string) ([]byte, error) {
		if path.IsAbs(p) {
			return readLimited(os.Open(p))
		}
		return readLimited(fsys.Open(path.Clean(p)))
	})
}

func readLimited(f fs.File, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err == nil && len(b) > maxFile {
		err = errors.New("larger than 1 MiB")
	}
	return b, err
}

// Parse checks a webhooks.yaml; readSecret reads a secret_file. Every
// error names the file and the subscription.
func Parse(b []byte, readSecret func(path string) ([]byte, error)) (*Subscriptions, error) {
	if len(b) > maxFile {
		return nil, fmt.Errorf("%s: larger than 1 MiB", FileName)
	}
	var f fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %s", FileName, yamlProblem(err))
	}
	s := &Subscriptions{byID: map[string]*Subscription{}, byType: map[string][]string{}}
	for i, y := range f.Subscriptions {
		bad := func(format string, args ...any) error {
			who := fmt.Sprintf("subscription %d", i+1)
			if y.ID != "" {
				who = fmt.Sprintf("subscription %q", y.ID)
			}
			return fmt.Errorf("%s: %s: %s", FileName, who, fmt.Sprintf(format, args...))
		}
		switch {
		case !idRE.MatchString(y.ID):
			return nil, bad("id must be 1 to 64 lower-case letters, digits, '-' and '_'")
		case s.byID[y.ID] != nil:
			return nil, bad("id is used twice")
		case len(y.EventTypes) == 0:
			return nil, bad("event_types is empty; list the event types it receives")
		case y.SecretFile == "":
			return nil, bad("secret_file is required: every delivery is signed")
		}
		if err := checkURL(y.URL); err != nil {
			return nil, bad("url %v", err)
		}
		sub := &Subscription{ID: y.ID, URL: y.URL}
		for _, t := range y.EventTypes {
			if !eventTypeRE.MatchString(t) {
				return nil, bad("event type %q is not an event type name", t)
			}
			if slices.Contains(sub.EventTypes, t) {
				return nil, bad("event type %q is listed twice", t)
			}
			sub.EventTypes = append(sub.EventTypes, t)
		}
		raw, err := readSecret(y.SecretFile)
		if err != nil {
			return nil, bad("secret_file %s: %v", y.SecretFile, err)
		}
		for n, line := range strings.Split(string(raw), "\n") {
			if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, err := ParseSecret(line)
			if err != nil {
				return nil, bad("secret_file %s line %d: %v", y.SecretFile, n+1, err)
			}
			sub.Keys = append(sub.Keys, k)
		}
		if len(sub.Keys) == 0 {
			return nil, bad("secret_file %s holds no secret", y.SecretFile)
		}
		s.byID[sub.ID] = sub
		for _, t := range sub.EventTypes {
			s.byType[t] = append(s.byType[t], sub.ID)
		}
	}
	for _, ids := range s.byType {
		slices.Sort(ids)
	}
	return s, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL", raw)
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	case u.User != nil:
		return fmt.Errorf("%q carries credentials; the signature authenticates herald", u.Redacted())
	case u.Fragment != "":
		return fmt.Errorf("%q has a fragment", raw)
	case u.Hostname() == "":
		return fmt.Errorf("%q has no host", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %s is not 1-65535", raw, p)
		}
	}
	return nil
}

var (
	unknownFieldRE = regexp.MustCompile(`field (\S+) not found in type .*`)
	typeNameRE     = regexp.MustCompile(` into \S+`)
)

// yamlProblem says what is wrong with the file in its own terms, not the
// decoder's Go types: "line 4: unknown key retries (a subscription has id,
// url, secret_file, event_types)".
func yamlProblem(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	out := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		e = unknownFieldRE.ReplaceAllString(e, "unknown key $1 (a subscription has id, url, secret_file, event_types)")
		out[i] = typeNameRE.ReplaceAllString(e, "")
	}
	return strings.Join(out, "; ")
}
