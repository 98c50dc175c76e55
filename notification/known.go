package notification

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// Spec is what every layer below the channel workers must know of a
// channel: its name, what a deliverable address is, how an address is
// shown in logs and stored in the suppression list, and which permanent
// failures mean the address itself is dead. It is part of the channel's
// descriptor (channels.Descriptor), declared in the channel's own folder
// and registered by the table in channels/all; nothing here lists channels.
type Spec struct {
	Name Channel
	// Check reports whether to is a well-formed address on the channel;
	// its error is permanent failure.ReasonInvalidAddress and never quotes
	// the address (package address has the shipped rules).
	Check func(to string) error
	// Mask shows an address in logs and operator output.
	Mask func(to string) string
	// Normalize is the form an address is stored and looked up in by the
	// suppression list; nil keeps it trimmed.
	Normalize func(to string) string
	// SuppressOn lists the permanent failure reasons that mean the address
	// can never receive on this channel: the worker adds it to the
	// suppression list on them.
	SuppressOn []string
}

// The channels herald knows are declared at program start by
// channels.Register, in the order of the registration table; every list of
// channels in the tree — topics, groups, roles, metric labels, decoders —
// is read from here. A channel that is not declared is not Valid anywhere.
var (
	declareMu sync.Mutex
	known     atomic.Pointer[registry]
)

type registry struct {
	order []Channel
	specs map[Channel]*Spec
}

var channelNameRE = regexp.MustCompile(`^[a-z][a-z0-9]{1,15}$`)

// Declare adds s to the known channels. Declaring a channel twice, a name
// that is not 2 to 16 lower-case letters and digits, or a spec without
// Check or Mask panics: it is a mistake in the registration table, found
// at start by every test.
func Declare(s Spec) {
	declareMu.Lock()
	defer declareMu.Unlock()
	switch {
	case !channelNameRE.MatchString(string(s.Name)):
		panic(fmt.Sprintf("notification: channel name %q is not 2 to 16 lower-case letters and digits", s.Name))
	case s.Check == nil || s.Mask == nil:
		panic(fmt.Sprintf("notification: channel %q declared without Check or Mask", s.Name))
	}
	next := &registry{specs: map[Channel]*Spec{}}
	if p := known.Load(); p != nil {
		next.order = append(next.order, p.order...)
		for k, v := range p.specs {
			next.specs[k] = v
		}
	}
	if next.specs[s.Name] != nil {
		panic(fmt.Sprintf("notification: channel %q declared twice", s.Name))
	}
	if s.Normalize == nil {
		s.Normalize = strings.TrimSpace
	}
	next.order = append(next.order, s.Name)
	next.specs[s.Name] = &s
	known.Store(next)
}

// Known returns every declared channel in declaration order. The slice is
// shared: callers must not modify it.
func Known() []Channel {
	if p := known.Load(); p != nil {
		return p.order
	}
	return nil
}

// SpecOf returns the declared spec of c, or nil.
func SpecOf(c Channel) *Spec {
	if p := known.Load(); p != nil {
		return p.specs[c]
	}
	return nil
}

// Valid reports whether c is a declared channel.
func (c Channel) Valid() bool { return SpecOf(c) != nil }

// Names lists the declared channels for messages: "email, sms, push".
func Names() string {
	k := Known()
	s := make([]string, len(k))
	for i, c := range k {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}
