package config

import (
	"flag"
	"fmt"
	"slices"
)

// LoadTool is Load for operator commands (herald trace and the like) that
// read Kafka or Redis but run no worker. It registers a flag for each named
// variable (and its -file form for a secret) on fs, next to the command's
// own flags, parses args, and fills only those variables: flag over
// environment over _FILE over default, each value checked as Load checks
// it. A variable listed in required must end up set. Rules between
// variables are not checked: a tool names too few of them for the rules to
// mean anything.
//
// Errors name the variable, as Load's do; -h and --help return
// flag.ErrHelp after fs prints its usage.
func LoadTool(fs *flag.FlagSet, args []string, getenv func(string) string, names []string, required ...string) (*Config, error) {
	vars := make([]*variable, 0, len(names))
	for _, n := range names {
		v := lookupVar(n)
		if v == nil {
			return nil, fmt.Errorf("config: LoadTool: unknown variable %s", n)
		}
		vars = append(vars, v)
		fs.String(v.flag(), "", v.doc)
		if v.secret {
			fs.String(v.flag()+"-file", "", v.doc)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	flags := make(map[string]string)
	fs.Visit(func(f *flag.Flag) { flags[f.Name] = f.Value.String() })

	c := &Config{Role: RoleAll}
	for _, v := range vars {
		raw, err := v.lookup(flags, getenv)
		if err == nil {
			if perr := v.bind.parse(c, raw); perr != nil {
				err = errorf(v.name, "%v", perr)
			}
		}
		if err != nil {
			return nil, err
		}
		set := v.bind.isSet(c)
		if !set && slices.Contains(required, v.name) {
			return nil, errorf(v.name, "required")
		}
		if set && v.bind.check != nil {
			if err := v.bind.check(c); err != nil {
				return nil, errorf(v.name, "%v", err)
			}
		}
	}
	return c, nil
}

func lookupVar(name string) *variable {
	for _, v := range registry {
		if v.name == name {
			return v
		}
	}
	return nil
}
