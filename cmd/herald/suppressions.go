package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/suppress"
)

const suppressionsUsage = `Usage:
  herald suppressions list [--channel C] [--unmasked] [--json] [--redis-url URL]
  herald suppressions remove [--channel C] [--redis-url URL] ADDRESS

Addresses a provider said can never receive (Twilio 21610/21211, FCM
UNREGISTERED, SMTP 5.1.1) are suppressed: herald does not send to them.
list prints them masked unless --unmasked; remove lifts one (a member who
opted in again; a webhook endpoint that answered 410 and is back). The
channel of remove is the first whose address rule accepts the address (an @
is email, a leading + is SMS, then push tokens) unless --channel says: give it
for a webhook subscription id.
Redis is reached as the workers reach it: HERALD_REDIS_URL and the
HERALD_REDIS_USERNAME/PASSWORD/TLS_* settings (or their flags).
`

// cmdSuppressions is `herald suppressions`.
func cmdSuppressions(args []string) int {
	sub, code, ok := subcommand("herald suppressions", suppressionsUsage, args, os.Stdout, os.Stderr, "list", "remove")
	if !ok {
		return code
	}
	fs := flag.NewFlagSet("herald suppressions "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { fmt.Fprint(os.Stderr, suppressionsUsage) }
	channel := fs.String("channel", "", notification.Names())
	unmasked := fs.Bool("unmasked", false, "list: print full addresses")
	asJSON := fs.Bool("json", false, "list: print JSON")
	cfg, exit := loadTool("herald suppressions "+sub, fs, args[1:], os.Getenv, os.Stderr, toolRedisVars, "HERALD_REDIS_URL")
	if exit != nil {
		return *exit
	}
	client, err := openToolRedis(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald suppressions: %v\n", err)
		return 2
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := reachToolRedis(ctx, cfg, client); err != nil {
		fmt.Fprintf(os.Stderr, "herald suppressions %s: %v\n", sub, err)
		return reachExit(err)
	}
	list := suppress.NewRedis(client, "", nil)
	defer list.Close()

	switch sub {
	case "list":
		if fs.NArg() != 0 {
			fmt.Fprint(os.Stderr, suppressionsUsage)
			return 2
		}
		err = listSuppressions(ctx, os.Stdout, list, *channel, *unmasked, *asJSON)
	case "remove":
		if fs.NArg() != 1 {
			fmt.Fprint(os.Stderr, suppressionsUsage)
			return 2
		}
		err = removeSuppression(ctx, os.Stdout, list, *channel, fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald suppressions %s: %v\n", sub, err)
		if errors.Is(err, suppress.ErrInvalid) {
			return 2
		}
		return 1
	}
	return 0
}

func listSuppressions(ctx context.Context, w io.Writer, list suppress.Store, channel string, unmasked, asJSON bool) error {
	es, err := list.List(ctx, channel)
	if err != nil {
		return err
	}
	if !unmasked {
		for i := range es {
			es[i].Address = obs.MaskAddress(es[i].Channel, es[i].Address)
		}
	}
	if asJSON {
		type row struct {
			Channel string    `json:"channel"`
			Address string    `json:"address"`
			Reason  string    `json:"reason"`
			Since   time.Time `json:"since"`
		}
		rows := make([]row, len(es))
		for i, e := range es {
			rows[i] = row{e.Channel, e.Address, e.Reason, e.At}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tADDRESS\tREASON\tSINCE")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Channel, e.Address, e.Reason, e.At.Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%d suppressed\n", len(es))
	return err
}

func removeSuppression(ctx context.Context, w io.Writer, list suppress.Store, channel, address string) error {
	if channel == "" {
		channel = channelOf(address)
	}
	removed, err := list.Remove(ctx, channel, address)
	if err != nil {
		return err
	}
	masked := obs.MaskAddress(channel, suppress.Normalize(channel, address))
	if !removed {
		return fmt.Errorf("%s %s is not suppressed", channel, masked)
	}
	_, err = fmt.Fprintf(w, "removed %s %s\n", channel, masked)
	return err
}

// channelOf guesses an address's channel from its form: the first channel,
// in registration order, whose address rule accepts it.
func channelOf(address string) string {
	a := strings.TrimSpace(address)
	for _, ch := range notification.Known() {
		if notification.SpecOf(ch).Check(a) == nil {
			return string(ch)
		}
	}
	return ""
}
