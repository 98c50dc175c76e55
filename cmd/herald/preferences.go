package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/prefs/unsubscribe"
	"github.com/gymhq/herald/templates"
)

const preferencesUsage = `Usage:
  herald preferences get [--redis-url URL] [--templates-dir DIR] PERSON
  herald preferences set [--redis-url URL] [--templates-dir DIR] PERSON 'JSON'

What a person chose about their notifications, as GET /v1/preferences shows
it to them: each channel, each category of the templates on each channel,
the required categories, and their quiet hours and time zone if they chose
any. set merges a change as PUT /v1/preferences does, for example
'{"categories":{"marketing":{"email":false}}}' or '{"channels":{"sms":null}}'
(null removes a stored choice); a change that would switch a required
category off on every channel is refused. Both print the whole result as
JSON. See docs/preferences.md.
Redis is reached as the workers reach it: HERALD_REDIS_URL and the
HERALD_REDIS_USERNAME/PASSWORD/TLS_* settings (or their flags); the
categories are those of HERALD_TEMPLATES_DIR, or the built-in templates.
`

// cmdPreferences is `herald preferences`.
func cmdPreferences(args []string) int {
	sub, code, ok := subcommand("herald preferences", preferencesUsage, args, os.Stdout, os.Stderr, "get", "set")
	if !ok {
		return code
	}
	command := "herald preferences " + sub
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { fmt.Fprint(os.Stderr, preferencesUsage) }
	vars := append(append([]string(nil), toolRedisVars...), "HERALD_TEMPLATES_DIR")
	cfg, exit := loadTool(command, fs, args[1:], os.Getenv, os.Stderr, vars, "HERALD_REDIS_URL")
	if exit != nil {
		return *exit
	}
	want := map[string]int{"get": 1, "set": 2}[sub]
	if pos := fs.Args(); len(pos) != want {
		fmt.Fprint(os.Stderr, preferencesUsage)
		return 2
	}
	person := fs.Arg(0)
	var patch *prefs.Patch
	err := prefs.CheckPerson(person)
	if err == nil && sub == "set" {
		patch, err = prefs.DecodePatch([]byte(fs.Arg(1)))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", command, err)
		return 2
	}
	tpl, err := loadTemplates(cfg.TemplatesDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", command, err)
		return 2
	}
	client, err := openToolRedis(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", command, err)
		return 2
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := reachToolRedis(ctx, cfg, client); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", command, err)
		return reachExit(err)
	}
	store := prefs.NewRedis(client, "")
	defer store.Close()
	if err := showPreferences(ctx, os.Stdout, store, tpl.Current(), person, patch); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", command, err)
		if errors.Is(err, prefs.ErrInvalid) || errors.Is(err, prefs.ErrRequired) {
			return 2
		}
		return 1
	}
	return 0
}

// showPreferences applies patch, when there is one, to person's
// preferences and writes the whole view as JSON.
func showPreferences(ctx context.Context, w io.Writer, store prefs.Store, set *templates.Set, person string, patch *prefs.Patch) error {
	var p *prefs.Prefs
	var err error
	if patch == nil {
		p, err = store.Get(ctx, person)
	} else {
		p, err = prefs.Change(ctx, store, set, person, patch)
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(prefs.NewView(p, set))
}

// setupPreferences makes the process's store of people's preferences:
// Redis when the fleet has it, else memory (herald dev on one process),
// one store shared by the dispatcher (choices), the channel workers that
// hear a person opt out (optOut: SMS STOP) and the gateway, which it
// returns. A process that sends email without unsubscribe links says so,
// once.
func (f *fleet) setupPreferences(rc redis.UniversalClient) prefs.Store {
	var store prefs.Store = prefs.NewMemory()
	if rc != nil {
		store = prefs.NewRedis(rc, "")
	}
	f.choices = tolerateCorrupt(prefs.PlanChoices(store), store, f.logger())
	f.optedOut = func(ctx context.Context, n *notification.Notification) (bool, error) {
		m, err := f.choices(ctx, []string{n.RecipientID})
		if err != nil {
			return false, err
		}
		c, ok := m[n.RecipientID]
		if !ok || c == nil {
			return false, nil
		}
		allow, decided := c.Allows(cmp.Or(n.Category, templates.Transactional), n.Channel)
		return decided && !allow, nil
	}
	f.quietEnd = func(ctx context.Context, n *notification.Notification, at time.Time) (time.Time, error) {
		m, err := f.choices(ctx, []string{n.RecipientID})
		if err != nil {
			return time.Time{}, err
		}
		return f.templates.Current().QuietEnd(n, m[n.RecipientID], at), nil // nil choices: none stored
	}
	f.optOut = func(ctx context.Context, n *notification.Notification) error {
		_, err := prefs.OptOut(ctx, store, n.RecipientID, n.Channel)
		if errors.Is(err, prefs.ErrInvalid) || errors.Is(err, prefs.ErrCorrupt) {
			// A recipient id no preference can be stored for, or a record
			// written by hand: the address is still suppressed, which
			// stops the messages; waiting would not fix either.
			f.logger().Warn("opt-out not recorded in the person's preferences", zap.String("recipient_id", n.RecipientID), zap.Error(err))
			return nil
		}
		return err
	}
	if f.cfg.Role.Runs(config.RoleEmail) && (f.cfg.Gateway.UnsubscribeSecret == "" || f.cfg.Gateway.PublicURL == "") {
		f.logger().Warn(unsubscribeLinksOff)
	}
	return store
}

// unsubscribeSigner checks the one-click unsubscribe links the email role
// signs; nil, and no /v1/unsubscribe endpoint, when HERALD_UNSUBSCRIBE_SECRET
// is not set.
func unsubscribeSigner(g config.Gateway) (*unsubscribe.Signer, error) {
	if g.UnsubscribeSecret == "" {
		return nil, nil
	}
	s, err := unsubscribe.NewSigner([]byte(g.UnsubscribeSecret), g.UnsubscribeTTL)
	if err != nil {
		return nil, fmt.Errorf("HERALD_UNSUBSCRIBE_SECRET: %w", err)
	}
	return s, nil
}

// unsubscribeLinksOff is logged once at start by a process that sends
// email without one-click unsubscribe links.
const unsubscribeLinksOff = "HERALD_UNSUBSCRIBE_SECRET and HERALD_GATEWAY_PUBLIC_URL are not set: " +
	"emails of categories people may switch off go without List-Unsubscribe, which mailbox providers require of bulk senders (docs/preferences.md)"

// tolerateCorrupt is lookup that, when a stored record does not decode (one
// written by hand), looks the people up one by one and plans the one whose
// record is corrupt without their choices, with a warning: retrying would
// not fix it, and would hold the event's partition for ever.
func tolerateCorrupt(lookup func(context.Context, []string) (map[string]templates.Choices, error), store prefs.Store, log *zap.Logger) func(context.Context, []string) (map[string]templates.Choices, error) {
	return func(ctx context.Context, ids []string) (map[string]templates.Choices, error) {
		out, err := lookup(ctx, ids)
		if !errors.Is(err, prefs.ErrCorrupt) {
			return out, err
		}
		out = map[string]templates.Choices{}
		for _, id := range ids {
			p, err := store.Get(ctx, id)
			switch {
			case errors.Is(err, prefs.ErrCorrupt):
				log.Warn("stored preferences do not decode; planned without them (fix with herald preferences set)", zap.String("recipient_id", id), zap.Error(err))
			case err != nil:
				return nil, err
			default:
				out[id] = p
			}
		}
		return out, nil
	}
}
