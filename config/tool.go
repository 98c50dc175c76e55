package config

import (
	"flag"
	"fmt"
	"strings"
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
// Flags may come before, between or after the positional arguments
// (ParseInterspersed), which fs.Args() then holds. Errors name the
// variable, as Load's do; -h and --help return flag.ErrHelp after fs
// prints its usage.
func LoadTool(fs *flag.FlagSet, args []string, getenv func(string) string, names []string, required ...string) (*Config, error) {
	vars := make([]*variable, 0, len(names))
	for _, n := range names {
		v := lookupVar(n)
		if v == nil {
			return nil, fmt.Errorf("config: LoadTool: unknown variable %s", n)
		}
		vars = append(vars, v)
		fs.String(v.flag(), "", flagUsage(v))
		if v.secret {
			fs.String(v.flag()+"-file", "", flagUsage(v))
		}
	}
	if _, err := ParseInterspersed(fs, args); err != nil {
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
		if v.bind.isSet(c) && v.bind.check != nil {
			if err := v.bind.check(c); err != nil {
				return nil, errorf(v.name, "%v", err)
			}
		}
	}
	if err := c.Require(required...); err != nil {
		return nil, err
	}
	return c, nil
}

// Require returns an *Error naming, on one line, every variable in names
// that is not set in c ("A, B: required"), or nil. A command that needs a
// variable only for some of its work (herald trace prints its usage before
// it asks for brokers) loads with LoadTool and calls Require afterwards.
func (c *Config) Require(names ...string) error {
	var missing []string
	for _, n := range names {
		v := lookupVar(n)
		if v == nil {
			return fmt.Errorf("config: Require: unknown variable %s", n)
		}
		if !v.bind.isSet(c) {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &Error{Var: missing[0], Missing: missing, msg: strings.Join(missing, ", ") + ": required"}
}

// flagUsage is v's documentation as a flag's usage. The flag package takes
// the first `quoted` word of a usage as the value's placeholder, which in
// our docs is another variable's name (-kafka-tls-cert-file showed
// HERALD_KAFKA_TLS_KEY_FILE); without the quotes it shows the value's type.
func flagUsage(v *variable) string { return strings.ReplaceAll(v.doc, "`", "") }

func lookupVar(name string) *variable {
	for _, v := range registry {
		if v.name == name {
			return v
		}
	}
	return nil
}

// ParseInterspersed parses fs's flags wherever they appear among the
// positional arguments (herald preferences get PERSON --redis-url URL;
// herald templates render TYPE --channel sms), as flag.Parse does only
// before the first positional one. It returns the positional arguments,
// in order, which fs.Args() then holds too. After "--" everything is
// positional.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...) // after the terminator
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if err := fs.Parse(append([]string{"--"}, pos...)); err != nil { // fs.Args() = pos
		return nil, err
	}
	return pos, nil
}
