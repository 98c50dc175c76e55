package main

import (
	"fmt"
	"os"

	"github.com/gymhq/herald/templates"
)

// cmdTemplates is `herald templates`. Today it has lint: load a template
// directory exactly as a worker would (routing parses, every template
// parses and renders against every sample in every locale) and report every
// problem. render/test/preview are tracked in the templates issue.
func cmdTemplates(args []string) int {
	if len(args) == 0 || args[0] != "lint" {
		fmt.Fprintln(os.Stderr, "usage: herald templates lint [DIR]   (DIR defaults to the templates built into herald)")
		return 2
	}
	var err error
	where := "built-in templates"
	if len(args) > 1 {
		where = args[1]
		_, err = templates.Load(os.DirFS(args[1]))
	} else {
		_, err = templates.Embedded()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%s: ok\n", where)
	return 0
}
