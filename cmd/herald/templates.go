package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/preview"
	"github.com/gymhq/herald/templates"
)

const templatesUsage = `usage: herald templates COMMAND

  lint [DIR]       check a template tree as a worker loads it; prints file:line: problem lines, exits 1 on any
  render EVENT_TYPE [--channel C] [--locale L] [--sample S] [--dir DIR]
                   print what each recipient of the samples gets (in locale L if given)
  test [--update] [DIR]
                   compare every rendering with DIR/testdata/golden (--update rewrites them)
  preview [--addr 127.0.0.1:8026] [DIR]
                   a web page of every event type x channel x locale, updating as files change

DIR defaults to the templates built into herald for lint, render and preview, and to
$HERALD_TEMPLATES_DIR, else ./templates, for test (golden files live beside the tree).
`

// cmdTemplates is `herald templates`: the product teams' tooling.
func cmdTemplates(args []string) int {
	return runTemplates(args, os.Stdout, os.Stderr)
}

func runTemplates(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, templatesUsage)
		return 2
	}
	switch args[0] {
	case "lint":
		return templatesLint(args[1:], stdout, stderr)
	case "render":
		return templatesRender(args[1:], stdout, stderr)
	case "test":
		return templatesTest(args[1:], stdout, stderr)
	case "preview":
		return templatesPreview(args[1:], stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, templatesUsage)
		return 0
	}
	fmt.Fprintf(stderr, "herald templates: unknown command %q\n\n%s", args[0], templatesUsage)
	return 2
}

// usageExit ends a templates subcommand whose arguments did not parse
// (err) or did not fit: usage on stderr, exit 2; but -h, which the flag
// package has answered with the flags on stderr, is asked for: usage on
// stdout, exit 0, as every other command's -h.
func usageExit(err error, usage string, stdout, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

func templatesLint(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald templates lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pos, err := config.ParseInterspersed(fs, args)
	if err != nil || len(pos) > 1 {
		return usageExit(err, "usage: herald templates lint [DIR]", stdout, stderr)
	}
	where := "templates built into herald"
	var in *templates.Inspection
	if len(pos) == 1 {
		where = pos[0]
		in, err = templates.InspectDir(pos[0])
	} else {
		in, err = templates.InspectEmbedded()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", where, err)
		return 1
	}
	for _, p := range in.Problems {
		fmt.Fprintln(stdout, p)
	}
	if len(in.Problems) > 0 {
		fmt.Fprintf(stderr, "%s: %d problem(s); the tree would be refused\n", where, len(in.Problems))
		return 1
	}
	fmt.Fprintf(stderr, "%s: ok, %d event types (%s), version %s\n", where, len(in.Set.EventTypes()), strings.Join(in.Set.EventTypes(), ", "), in.Version)
	return 0
}

// loadForTool loads DIR, or the embedded templates, for render; problems
// are printed as lint prints them.
func loadForTool(dir string, stderr io.Writer) (*templates.Set, bool) {
	var s *templates.Set
	var err error
	if dir == "" {
		s, err = templates.Embedded()
	} else {
		s, err = templates.LoadDir(dir)
	}
	if err != nil {
		var le *templates.LoadError
		if errors.As(err, &le) {
			for _, p := range le.Problems {
				fmt.Fprintln(stderr, p)
			}
			fmt.Fprintf(stderr, "%d problem(s); run herald templates lint\n", len(le.Problems))
		} else {
			fmt.Fprintln(stderr, err)
		}
		return nil, false
	}
	return s, true
}

func templatesRender(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald templates render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	channel := fs.String("channel", "", notification.Names()+" (default: every channel the event type sends)")
	locale := fs.String("locale", "", "render for a recipient with this locale (BCP 47), resolved as for a real one (es-MX → es → en); default: each sample recipient's own")
	sampleName := fs.String("sample", "", "sample file name without .json (default: every sample)")
	dir := fs.String("dir", "", "template tree (default: the templates built into herald)")
	pos, err := config.ParseInterspersed(fs, args)
	if err != nil || len(pos) != 1 {
		return usageExit(err, "usage: herald templates render EVENT_TYPE [--channel C] [--locale L] [--sample S] [--dir DIR]", stdout, stderr)
	}
	typ := pos[0]
	if *channel != "" && !notification.Channel(*channel).Valid() {
		fmt.Fprintf(stderr, "--channel %q: want one of %s\n", *channel, notification.Names())
		return 2
	}
	s, ok := loadForTool(*dir, stderr)
	if !ok {
		return 1
	}
	if !s.Known(typ) {
		fmt.Fprintf(stderr, "no event type %q; the tree has %s\n", typ, strings.Join(s.EventTypes(), ", "))
		return 1
	}
	var names []string
	printed := 0
	for _, smp := range s.Samples(typ) {
		names = append(names, smp.Name)
		if *sampleName != "" && smp.Name != *sampleName {
			continue
		}
		ns, err := s.Plan(smp.Event, smp.Event.Time)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", smp.File, err)
			return 1
		}
		done := map[string]bool{}
		for _, n := range ns {
			if *channel != "" && string(n.Channel) != *channel {
				continue
			}
			if k := n.Template + " " + string(n.Channel) + " " + n.RecipientID; done[k] {
				continue // further push tokens render identically
			} else {
				done[k] = true
			}
			if *locale != "" {
				n.Locale = *locale
			}
			m, err := s.Render(&n)
			if printed > 0 {
				fmt.Fprintln(stdout)
			}
			printed++
			fmt.Fprintf(stdout, "=== %s · %s · %s · locale %s", smp.File, n.Template, n.Channel, n.Locale)
			if m != nil && m.Locale != n.Locale {
				fmt.Fprintf(stdout, " (rendered from %s templates)", m.Locale)
			}
			fmt.Fprintf(stdout, " · to %s (%s)\n", terminalSafe(n.To), terminalSafe(n.RecipientID))
			if err != nil {
				fmt.Fprintf(stdout, "render error: %v\n", err)
				continue
			}
			printMessage(stdout, m)
		}
	}
	if *sampleName != "" && !contains(names, *sampleName) {
		fmt.Fprintf(stderr, "no sample %q for %s; it has %s\n", *sampleName, typ, strings.Join(names, ", "))
		return 1
	}
	if printed == 0 {
		fmt.Fprintf(stderr, "no sample of %s sends %s\n", typ, *channel)
		return 1
	}
	return 0
}

// terminalSafe is s as it is when every character of it is visible, and
// Go-quoted with escapes otherwise. A sample's address and id are shown
// as written, not cleaned like display text (herald never edits an
// address), and one holding a control or bidirectional formatting
// character (an outside tester's "emma\u202e@example.com") reversed
// the rest of the terminal line.
func terminalSafe(s string) string {
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func printMessage(w io.Writer, m *channels.Message) {
	switch notification.Channel(m.Channel) {
	case notification.Email:
		fmt.Fprintf(w, "subject: %s\n", m.Subject)
		for _, a := range m.Attachments {
			fmt.Fprintf(w, "attachment: %s (%s, %d bytes)\n", a.Filename, a.ContentType, len(a.Data))
		}
		fmt.Fprintf(w, "--- text ---\n%s", m.Text)
		fmt.Fprintf(w, "--- html ---\n%s\n", strings.TrimRight(m.HTML, "\n"))
	case notification.SMS:
		info := templates.SMS(m.Text)
		fmt.Fprintf(w, "encoding: %s · %d characters · %d segment(s)", info.Encoding, info.Units, info.Segments)
		if info.NonGSMAt != 0 {
			fmt.Fprintf(w, " · UCS-2 because of %q (%U) at character %d", info.NonGSM, info.NonGSM, info.NonGSMAt)
		}
		fmt.Fprintf(w, "\n--- text ---\n%s\n", m.Text)
	case notification.Push:
		fmt.Fprintf(w, "title: %s\nbody: %s\n", m.Title, m.Text)
		keys := make([]string, 0, len(m.Data))
		for k := range m.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "data.%s: %s\n", k, m.Data[k])
		}
		fmt.Fprintf(w, "payload: %d bytes (FCM and APNs accept 4096)\n", templates.PushPayloadBytes(m))
	default:
		for _, p := range channels.Lookup(m.Channel).Parts {
			fmt.Fprintf(w, "--- %s ---\n%s\n", p.File, templates.PartText(m, p.Field))
		}
	}
}

func templatesTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald templates test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	update := fs.Bool("update", false, "rewrite the golden files from the current rendering (review the diff before committing)")
	pos, err := config.ParseInterspersed(fs, args)
	if err != nil || len(pos) > 1 {
		return usageExit(err, "usage: herald templates test [--update] [DIR]", stdout, stderr)
	}
	dir := os.Getenv("HERALD_TEMPLATES_DIR")
	if len(pos) == 1 {
		dir = pos[0]
	}
	if dir == "" {
		dir = "templates"
	}
	s, ok := loadForTool(dir, stderr)
	if !ok {
		return 1
	}
	res, err := templates.Golden(s, dir, *update)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	golden := dir + "/"
	for _, f := range res.Written {
		fmt.Fprintf(stdout, "updated %s%s\n", golden, f)
	}
	var diffs []string
	for f := range res.Differ {
		diffs = append(diffs, f)
	}
	sort.Strings(diffs)
	for _, f := range diffs {
		d := res.Differ[f]
		fmt.Fprintf(stdout, "%s%s:%d: differs from the rendering\n  golden:   %q\n  rendered: %q\n", golden, f, d.Line, d.Want, d.Got)
	}
	for _, f := range res.Missing {
		fmt.Fprintf(stdout, "%s%s: no golden file for this rendering\n", golden, f)
	}
	for _, f := range res.Stale {
		fmt.Fprintf(stdout, "%s%s: golden file that nothing renders any more\n", golden, f)
	}
	for f, err := range res.Failed {
		fmt.Fprintf(stdout, "%s%s: %v\n", golden, f, err)
	}
	if !res.OK() {
		fmt.Fprintf(stderr, "%s: %d of %d renderings differ from testdata/golden; run herald templates test --update %s and review the diff\n",
			dir, len(res.Differ)+len(res.Missing)+len(res.Failed), res.Checked, dir)
		return 1
	}
	fmt.Fprintf(stderr, "%s: %d renderings match testdata/golden\n", dir, res.Checked)
	return 0
}

func templatesPreview(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald templates preview", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8026", "listen address of the preview page")
	pos, err := config.ParseInterspersed(fs, args)
	if err != nil || len(pos) > 1 {
		return usageExit(err, "usage: herald templates preview [--addr 127.0.0.1:8026] [DIR]", os.Stdout, stderr)
	}
	var dir string
	if len(pos) == 1 {
		dir = pos[0]
	}
	srv, err := preview.New(preview.Options{Dir: dir})
	if err != nil {
		fmt.Fprintf(stderr, "herald templates preview: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "herald templates preview: --addr %s: %v\n", *addr, err)
		return 2
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	what := "the templates built into herald"
	if dir != "" {
		what = dir + " (the page updates when a file changes)"
	}
	fmt.Fprintf(stderr, "previewing %s at http://%s/\n", what, ln.Addr())
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
