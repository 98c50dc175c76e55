package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gymhq/herald/notification"
)

// variable is one entry of the registry: everything herald knows about one
// setting. Only name, doc and bind are mandatory.
type variable struct {
	// name is the environment variable; the flag is derived from it.
	name string
	// group is the docs/configuration.md section the variable is listed in.
	group string
	// def is the default as it would be written in the environment; "" is
	// no default.
	def string
	// dynamicDefault, if set, computes the default at load time (the host
	// name); dynamicDoc says in the docs what it will be.
	dynamicDefault func() (string, error)
	dynamicDoc     string
	// doc is the operator's documentation: what it is for, the trade-off in
	// raising or lowering it. Its first sentence is the -h summary.
	doc string
	// secret variables also have a _FILE form and are never shown in logs.
	secret bool
	// redact, for a secret, shows a set value in Redacted; nil is "***".
	redact func(string) string
	// scope lists the roles that use the variable (RoleAll always does);
	// nil is every role. Other roles neither read nor check it.
	scope []Role
	// required lists the roles for which it must be set (RoleAll is implied
	// when the list is not empty); requiredDoc, if set, replaces the list in
	// the docs.
	required    []Role
	requiredDoc string
	// bind parses, formats and checks the value of the Config field.
	bind binding
	// rule, if set, checks the variable against earlier ones in the
	// registry. It runs whenever the variable is in scope, set or not.
	rule func(c *Config) error
}

// everyRole is the required list of a variable no worker can start without.
var everyRole = []Role{RoleDispatcher, RoleChannels}

// flag is the flag name: the variable without HERALD_, lower case, - for _.
func (v *variable) flag() string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(v.name, "HERALD_")), "_", "-")
}

func (v *variable) usedBy(r Role) bool {
	return v.scope == nil || r == RoleAll || hasRole(v.scope, r)
}

func (v *variable) requiredBy(r Role) bool {
	return len(v.required) > 0 && (r == RoleAll || hasRole(v.required, r))
}

func hasRole(rs []Role, r Role) bool {
	for _, x := range rs {
		if x == r || x == RoleChannels && r != RoleDispatcher && notification.Channel(r).Valid() {
			return true
		}
	}
	return false
}

func (v *variable) defaultValue() (string, error) {
	if v.def == "" && v.dynamicDefault != nil {
		return v.dynamicDefault()
	}
	return v.def, nil
}

// lookup returns the raw value of v: flag over environment over default, a
// _FILE form standing in for its plain form at its level.
func (v *variable) lookup(flags map[string]string, getenv func(string) string) (string, error) {
	f := v.flag()
	if s, ok, err := v.source(flags[f], flags[f+"-file"], "--"+f, "--"+f+"-file"); ok || err != nil {
		return s, err
	}
	if s, ok, err := v.source(getenv(v.name), getenv(v.name+"_FILE"), v.name, v.name+"_FILE"); ok || err != nil {
		return s, err
	}
	s, err := v.defaultValue()
	if err != nil {
		return "", errorf(v.name, "not set, and no default: %v", err)
	}
	return s, nil
}

// source picks the value of v at one level of precedence, given its plain
// value and, for a secret, the path in its _FILE form.
func (v *variable) source(plain, path, plainName, fileName string) (string, bool, error) {
	if !v.secret {
		plain = strings.TrimSpace(plain)
		return plain, plain != "", nil
	}
	switch {
	case plain != "" && path != "":
		return "", false, &Error{Var: v.name, msg: fmt.Sprintf("%s and %s are both set; use one", plainName, fileName)}
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return "", false, &Error{Var: v.name, msg: fileName + ": " + err.Error()}
		}
		// Secret files are often written by tools that end them with a
		// newline, which is never part of the secret.
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", false, &Error{Var: v.name, msg: fmt.Sprintf("%s: %s is empty", fileName, path)}
		}
		return s, true, nil
	}
	return plain, plain != "", nil
}

// check checks v's value and rule in c if c.Role uses it. Whether a
// required v is set is Config.missing's job, which names them all at once.
func (v *variable) check(c *Config) *Error {
	if !v.usedBy(c.Role) {
		return nil
	}
	set := v.bind.isSet(c)
	if set && v.bind.check != nil {
		if err := v.bind.check(c); err != nil {
			return errorf(v.name, "%v", err)
		}
	}
	if v.rule != nil {
		if err := v.rule(c); err != nil && !errors.As(err, new(requiredUnless)) {
			return errorf(v.name, "%v", err)
		}
	}
	return nil
}
