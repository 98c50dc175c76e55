// Command herald is the notification fan-out worker: one binary whose
// subcommand (and --role) picks the work, so one image serves every
// Deployment.
package main

import (
	"fmt"
	"os"
	"strings"

	_ "github.com/gymhq/herald/channels/all" // the registration table: every channel herald has
	"github.com/gymhq/herald/notification"
)

var usage = strings.NewReplacer("CHANNELS", strings.ReplaceAll(notification.Names(), ", ", "|")).Replace(usageText)

const usageText = `herald — booking events in, notifications out on every channel, effectively once.

Usage:
  herald run [--role dispatcher|CHANNELS|gateway|all] [flags]
                                                             a production worker (flags: herald run -h)
  herald dev [--kafka-addr 127.0.0.1:9092] [--http-addr 127.0.0.1:8025] [--simulate-rate N]
                                                             the whole fleet in one process on embedded parts
  herald templates lint [DIR]                                check templates before they ship
  herald trace EVENT_ID [--since 24h] [--json]               one event's story across roles (herald trace -h)
  herald dlq inspect|replay [flags]                          summarise or replay dead letters (herald dlq -h)
  herald suppressions list|remove [flags]                    addresses providers said never to send to again
  herald preferences get|set PERSON [JSON]                   what a person chose to get (herald preferences -h)
  herald templates render|test|preview ...                   see what recipients get (herald templates help)
  herald decode < RECORD_VALUE                               one channel-topic record as JSON (herald decode -h)
  herald bench [--scenario a,b] [--json] [--rtt 0,0.5ms]     measure herald against its baselines (make bench)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var code int
	switch os.Args[1] {
	case "run":
		code = cmdRun(os.Args[2:])
	case "dev":
		code = cmdDev(os.Args[2:])
	case "templates":
		code = cmdTemplates(os.Args[2:])
	case "trace":
		code = cmdTrace(os.Args[2:])
	case "dlq":
		code = cmdDLQ(os.Args[2:])
	case "suppressions":
		code = cmdSuppressions(os.Args[2:])
	case "preferences":
		code = cmdPreferences(os.Args[2:])
	case "bench":
		code = cmdBench(os.Args[2:])
	case "decode":
		code = cmdDecode(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "herald: unknown command %q\n\n%s", os.Args[1], usage)
		code = 2
	}
	os.Exit(code)
}
