package channels

import (
	"crypto/tls"
	"fmt"
	"io/fs"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sinks"
)

// Descriptor is everything herald knows about one channel, declared in the
// channel's own folder (channels/<name>/descriptor.go) and registered by
// the table in channels/all. Every list of channels in the tree — topics,
// consumer groups, roles, metric labels, configuration checks, DLQ
// decoding, suppression, planning, rendering, lint, preview, golden files,
// deploy manifests and docs tables — is read from the registered
// descriptors, so a channel is added with one folder and one line in that
// table. A descriptor missing a piece herald needs fails Register, which
// every test and every start runs.
type Descriptor struct {
	// Spec is the channel's name, address rule, masking, suppression
	// normalisation and the failure reasons that feed suppression.
	notification.Spec

	// Doc is one sentence for the docs' channel table: what the channel
	// delivers and through what.
	Doc string
	// Provider names the provider for metrics and docs ("smtp", "twilio").
	Provider string

	// Addresses returns where a person can be reached on the channel, in
	// the event's order without duplicates; empty means not at all. The
	// planner checks each with Check and never edits one.
	Addresses func(p *events.Person) []string
	// Subscribers replaces Addresses for a channel whose addresses are not
	// in the event but subscribed to its type (webhook endpoints): given
	// what Files read from the serving template tree, it returns the
	// addresses subscribed to eventType. Each person a rule sends to on
	// the channel then goes to each of them.
	Subscribers func(files any, eventType string) []string
	// Files, when set, reads the channel's own files at the top of the
	// template tree (webhooks.yaml) whenever a tree is loaded, so they are
	// checked and hot-reloaded with the templates: an error refuses the
	// tree like a template problem. What it returns is kept with the tree,
	// given to Subscribers and to the Sender through Build.Files.
	Files func(fsys fs.FS) (any, error)
	// AddressField names the event field Addresses reads, for docs and
	// lint messages ("email", "phone", "push_tokens").
	AddressField string

	// Parts are the template files a rule sending on the channel needs in
	// every locale it has, and where each rendered part goes.
	Parts []Part

	// Settings are variables only this channel reads, declared here once
	// (config.Setting) and read in New with Config.Value, Bool or
	// Duration. They are scoped to the channel's role.
	Settings []config.Setting

	// New builds the channel's Sender from the configuration. The worker
	// wraps it (breaker, rate, tracing); New returns the bare provider.
	New func(b Build) (Sender, error)
	// Rate is the channel's fleet-wide send rate per second from the
	// configuration; 0 is unlimited.
	Rate func(c *config.Config) int

	// Deploy is what the channel's Kubernetes workload needs beyond what
	// every channel's has; deploy/cmd/channel-manifests generates the
	// Deployment, ScaledObject and PodDisruptionBudget from it.
	Deploy Deploy

	// Dev starts the channel's stand-in provider for herald dev and the
	// fleet tests — one that speaks the provider's real wire format and
	// records what it accepts into the outbox — and points the
	// configuration at it.
	Dev func(o DevOptions) (*DevFake, error)
}

// Deploy describes a channel's Kubernetes workload.
type Deploy struct {
	// Secret is the provider credential its pods mount, if any.
	Secret *DeploySecret
	// LagPerPod is the consumer lag KEDA keeps per pod; default 100.
	LagPerPod int
}

// DeploySecret is a provider credential mounted from the Secret
// herald-<Name> at /etc/herald/secrets/<Name>/, read through Env (a _FILE
// variable, or one that names a file) pointing at Key.
type DeploySecret struct {
	Name, Key, Env string
}

// DevOptions are what a channel's Dev gets.
type DevOptions struct {
	// Outbox records what the stand-in accepts (herald dev's page).
	Outbox *sinks.Outbox
	// Config is herald dev's configuration, for Dev to point at the
	// stand-in; it is validated after every channel's Dev ran.
	Config *config.Config
	// Dir is a private temporary directory for files (credentials).
	Dir string
	// CallbackBase, when set, is the base URL ("http://127.0.0.1:8025")
	// where herald dev's HTTP server takes providers' callbacks (delivery
	// receipts): a stand-in that can post them does.
	CallbackBase string
}

// DevFake is a running stand-in.
type DevFake struct {
	// Fake is the stand-in itself (*twiliofake.Fake, …), for tests that
	// script its failures.
	Fake any
	// TLS, when set, is Build.TLS: trust for the stand-in's self-signed
	// certificate.
	TLS *tls.Config
	// Close stops it.
	Close func()
	// Routes, when set, are served by herald dev's own HTTP server (a
	// receiver a tree's files can point at): pattern → handler.
	Routes map[string]http.Handler
}

// Field is where a rendered template part goes in a Message.
type Field int

const (
	FieldText Field = iota + 1
	FieldSubject
	FieldHTML
	FieldTitle
)

// Part is one template file of a channel: <rule>.<channel>.<locale>.<File>.
type Part struct {
	// File is the part's name in template file names: "subject.txt",
	// "txt", "html".
	File string
	// Field is where the rendered text goes.
	Field Field
	// HTML parts are parsed with html/template, which escapes data.
	HTML bool
	// OneLine collapses the rendered text to one trimmed line (a subject or
	// a title), so data cannot inject a header or a second line.
	OneLine bool
	// EndLine ends the trimmed text with one newline (an email's plain
	// text part, as mail readers expect); Check and Limit see it.
	EndLine bool
	// Check, when set, refuses rendered text the channel cannot send (a
	// webhook's data that is not a JSON object): the error is a render
	// failure, and lint reports it for every sample.
	Check func(text string) error
	// Limit, when set, is the longest the rendered part may be, in
	// characters: longer text is cut with an ellipsis at send time and
	// recorded in Message.Shortened as Name.
	Limit int
	// Name is the part as Message.Shortened, lint and the preview name it
	// ("subject", "title", "body").
	Name string
}

// Build is what a channel's New gets.
type Build struct {
	Config *config.Config
	// TLS, when set, replaces the system roots for the provider's TLS
	// (herald dev's self-signed fakes).
	TLS *tls.Config
	// Files returns what the descriptor's Files read from the template
	// tree serving now (nil when it has none); call it per send, since the
	// tree is hot-reloaded.
	Files func() any
	// Feed is the process's in-app feeds (Redis, or memory in herald dev),
	// shared with the gateway that shows them; nil for roles without it.
	Feed feed.Store
}

// The registry is written at start and read on every render, so reads take
// no lock: Register replaces it whole.
var (
	regMu sync.Mutex
	reg   atomic.Pointer[registry]
)

type registry struct {
	table map[notification.Channel]*Descriptor
	order []*Descriptor
}

// Register declares d's channel. It panics on a descriptor missing a piece
// herald needs, or on a name registered twice: a mistake in the
// registration table that no process may start with.
func Register(ds ...*Descriptor) {
	regMu.Lock()
	defer regMu.Unlock()
	for _, d := range ds {
		if err := d.check(); err != nil {
			panic("channels: " + err.Error())
		}
		notification.Declare(d.Spec)
		config.Declare(d.Name, d.Settings...)
		next := &registry{table: map[notification.Channel]*Descriptor{}}
		if cur := reg.Load(); cur != nil {
			next.order = append(next.order, cur.order...)
			for k, v := range cur.table {
				next.table[k] = v
			}
		}
		next.table[d.Name] = d
		next.order = append(next.order, d)
		reg.Store(next)
	}
}

func (d *Descriptor) check() error {
	switch {
	case (d.Addresses == nil) == (d.Subscribers == nil) || d.AddressField == "":
		return fmt.Errorf("channel %q: needs one of Addresses or Subscribers, and AddressField", d.Name)
	case len(d.Parts) == 0:
		return fmt.Errorf("channel %q: no template Parts", d.Name)
	case d.New == nil:
		return fmt.Errorf("channel %q: no New", d.Name)
	case d.Doc == "" || d.Provider == "":
		return fmt.Errorf("channel %q: no Doc or Provider", d.Name)
	case d.Dev == nil:
		return fmt.Errorf("channel %q: no Dev stand-in for herald dev and the tests", d.Name)
	}
	seen := map[string]bool{}
	for _, p := range d.Parts {
		if p.File == "" || p.Field == 0 || seen[p.File] {
			return fmt.Errorf("channel %q: part %q has no file or field, or is listed twice", d.Name, p.File)
		}
		seen[p.File] = true
	}
	return nil
}

// Lookup returns the registered descriptor of ch, or nil.
func Lookup(ch notification.Channel) *Descriptor {
	if r := reg.Load(); r != nil {
		return r.table[ch]
	}
	return nil
}

// All returns the registered descriptors in registration order.
func All() []*Descriptor {
	if r := reg.Load(); r != nil {
		return append([]*Descriptor(nil), r.order...)
	}
	return nil
}
