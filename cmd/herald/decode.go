package main

import (
	"fmt"
	"io"
	"os"

	"github.com/gymhq/herald/notification"
)

const decodeUsage = `herald decode < RECORD_VALUE

Prints one channel- or retry-topic record's value (read from stdin) as the
notification's JSON, whichever form it is in (docs/contracts.md §3): the
binary form herald writes, or the JSON form older records and other tools
use. For example, one record of a stalled partition:

  kcat -C -b BROKER -t herald.email.v1 -p 3 -o 1234 -c 1 -e -f '%s' | herald decode

Exit status 1, with the reason, when the bytes are not a notification.
`

func cmdDecode(args []string) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			_, _ = io.WriteString(os.Stdout, decodeUsage)
			return 0
		}
		fmt.Fprintf(os.Stderr, "herald decode: takes no arguments (the record's value is read from stdin)\n\n%s", decodeUsage)
		return 2
	}
	return decode(os.Stdin, os.Stdout, os.Stderr)
}

// decode prints the notification in the record value read from in as JSON.
func decode(in io.Reader, out, errOut io.Writer) int {
	b, err := io.ReadAll(io.LimitReader(in, notification.MaxEncodedSize+1))
	if err != nil {
		fmt.Fprintf(errOut, "herald decode: reading stdin: %v\n", err)
		return 1
	}
	if len(b) == 0 {
		fmt.Fprintf(errOut, "herald decode: stdin is empty: give one record's value (kcat -f '%%s')\n")
		return 1
	}
	n, err := notification.Parse(b)
	if err != nil {
		fmt.Fprintf(errOut, "herald decode: %d bytes are not a notification: %v\n", len(b), err)
		return 1
	}
	j, err := notification.JSON(n)
	if err != nil {
		fmt.Fprintf(errOut, "herald decode: %v\n", err)
		return 1
	}
	fmt.Fprintf(out, "%s\n", j)
	if err := n.Validate(); err != nil {
		fmt.Fprintf(errOut, "herald decode: the notification is not valid (a worker dead-letters it): %v\n", err)
		return 1
	}
	return 0
}
