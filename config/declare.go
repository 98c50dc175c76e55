package config

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gymhq/herald/notification"
)

// Setting is a variable declared outside this package, in the folder of
// the channel that reads it (its channels.Descriptor), so that adding a
// channel adds its variables without editing the registry. Once declared it
// is a variable like any other: a flag, a _FILE form when secret, checked
// at start with one line naming it, listed in -h and docs/configuration.md.
// It is scoped to the channel's role (and --role all).
type Setting struct {
	// Name is the environment variable, HERALD_<CHANNEL>_….
	Name string
	// Group is the docs/configuration.md section; a section that exists
	// lists it after its own variables. Default: the channel's name,
	// capitalised.
	Group string
	// Default as it would be written in the environment; "" is none.
	Default string
	// Doc is the operator's documentation; its first sentence is the -h
	// summary.
	Doc string
	// Kind and Accepts describe the value for -h and the docs ("bool",
	// "true or false").
	Kind, Accepts string
	// Secret settings have a _FILE form and are never shown in logs.
	Secret bool
	// Required settings must be set for the channel's workers to start.
	Required bool
	// Check reports what is wrong with a set value, without quoting a
	// secret; nil accepts anything. Not used with Bind, whose check it is.
	Check func(string) error
	// Bind, when set, stores the value in a Config field instead of as a
	// raw value; Kind and Accepts then come from it.
	Bind *Binding
	// Rule, when set, checks the setting against settings declared before
	// it, whenever its role runs (RequiredUnless for "this or that").
	Rule func(c *Config) error
	// RequiredDoc replaces the docs' list of roles that require it.
	RequiredDoc string
}

// Declare adds settings read by channel ch to the registry, after the
// variables declared here, in the order given. It is called at program
// start by channels.Register and panics on a name already declared: a
// mistake in a descriptor that no process may start with.
func Declare(ch notification.Channel, ss ...Setting) {
	for _, s := range ss {
		for _, v := range registry {
			if v.name == s.Name {
				panic(fmt.Sprintf("config: %s is declared twice", s.Name))
			}
		}
		s := s
		group := s.Group
		if group == "" {
			group = groupOf(ch)
		}
		v := &variable{
			name: s.Name, group: group, def: s.Default, doc: s.Doc, secret: s.Secret,
			scope: []Role{Role(ch)},
			bind: binding{
				kind: s.Kind, accepts: s.Accepts,
				parse:  func(c *Config, raw string) error { c.setDeclared(s.Name, raw); return nil },
				format: func(c *Config) string { return c.declared[s.Name] },
				isSet:  func(c *Config) bool { return c.declared[s.Name] != "" },
			},
		}
		if s.Required {
			v.required = []Role{Role(ch)}
		}
		if s.Check != nil {
			v.bind.check = func(c *Config) error { return s.Check(c.declared[s.Name]) }
		}
		if s.Bind != nil {
			v.bind = s.Bind.b
		}
		v.rule, v.requiredDoc = s.Rule, s.RequiredDoc
		// After its group's variables; a new group goes before the
		// process-wide settings (Service), beside the other channels'.
		at, service := -1, len(registry)
		for i, x := range registry {
			if x.group == group {
				at = i + 1
			}
			if x.group == "Service" && service == len(registry) {
				service = i
			}
		}
		if at < 0 {
			at = service
		}
		registry = append(registry[:at], append([]*variable{v}, registry[at:]...)...)
	}
}

// groupOf is the docs section of a channel's settings: its name, capitalised.
func groupOf(ch notification.Channel) string {
	s := string(ch)
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func (c *Config) setDeclared(name, raw string) {
	if c.declared == nil {
		c.declared = map[string]string{}
	}
	c.declared[name] = raw
}

// Value is a declared setting's value as written ("" when not set and
// without default). It panics on a name nobody declared: a typo in the
// channel that reads it.
func (c *Config) Value(name string) string {
	for _, v := range registry {
		if v.name == name {
			return c.declared[name]
		}
	}
	panic("config: no setting " + name)
}

// SetValue sets a declared setting in a Config built in code (herald dev,
// tests); Validate checks it as Load would.
func (c *Config) SetValue(name, raw string) {
	c.Value(name) // panics on an undeclared name
	c.setDeclared(name, raw)
}

// Bool is a declared setting checked with CheckBool, as a bool.
func (c *Config) Bool(name string) bool {
	b, _ := strconv.ParseBool(c.Value(name))
	return b
}

// Duration is a declared setting checked with CheckDuration, as a
// time.Duration (0 when not set).
func (c *Config) Duration(name string) time.Duration {
	d, _ := time.ParseDuration(c.Value(name))
	return d
}

// CheckBool accepts what strconv.ParseBool does.
func CheckBool(s string) error {
	if _, err := strconv.ParseBool(s); err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	return nil
}

// CheckDuration accepts a duration within min..max.
func CheckDuration(min, max time.Duration) func(string) error {
	return func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 500ms, 15s, 2m)", s)
		}
		if d < min || d > max {
			return fmt.Errorf("%s is out of range %s..%s", fmtDuration(d), fmtDuration(min), fmtDuration(max))
		}
		return nil
	}
}

// Int is a declared setting checked with CheckInt, as an int (0 when not
// set).
func (c *Config) Int(name string) int {
	n, _ := strconv.Atoi(c.Value(name))
	return n
}

// CheckInt accepts a whole number within min..max.
func CheckInt(min, max int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		if n < min || n > max {
			return fmt.Errorf("%d is out of range %d..%d", n, min, max)
		}
		return nil
	}
}
