package prefs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// Store keeps people's preferences. Implementations are safe for
// concurrent use; Close is called once, after the last other call.
type Store interface {
	// Get returns person's preferences; empty (never nil) when they
	// stored none.
	Get(ctx context.Context, person string) (*Prefs, error)
	// Update reads person's preferences, lets fn change them and stores
	// the result, as one atomic step: two concurrent updates of one
	// person never lose either's change. fn may be called more than once
	// (each time with what is stored then) and must have no other
	// effect; its error aborts the update and is returned as it is. A
	// result with no choice left removes the record. It returns what is
	// stored after.
	Update(ctx context.Context, person string, fn func(*Prefs) error) (*Prefs, error)
	// Lookup returns the preferences of those of persons who stored some,
	// for the dispatcher's hot path: concurrent lookups share one round
	// trip. A person absent from the map stored none (or is not a valid
	// person id, and so cannot have). The map may be nil when nobody in
	// persons stored any; it is not to be written to.
	Lookup(ctx context.Context, persons []string) (map[string]*Prefs, error)
	Close() error
}

// ErrCorrupt is a stored record that does not decode: it was written by
// hand or by something other than herald. Get, Update and Lookup fail
// for that person until an operator removes the key.
var ErrCorrupt = errors.New("prefs: stored preferences do not decode")

// encode is the stored form: the JSON of Prefs.
func encode(p *Prefs) ([]byte, error) { return json.Marshal(p) }

// decode reads the stored form. It is lenient where DecodePatch is strict
// (unknown keys are ignored), so that a newer herald's records stay
// readable by an older one during a rolling deploy.
func decode(person string, b []byte) (*Prefs, error) {
	p := &Prefs{}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, person, err)
	}
	p.tidy()
	return p, nil
}

// Memory is a Store in process memory: herald dev without Redis, and
// tests. It holds the stored form, so that what Get returns is a copy.
type Memory struct {
	mu sync.RWMutex
	m  map[string][]byte
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{m: map[string][]byte{}} }

// Get implements Store.
func (s *Memory) Get(_ context.Context, person string) (*Prefs, error) {
	if err := CheckPerson(person); err != nil {
		return nil, err
	}
	s.mu.RLock()
	b, ok := s.m[person]
	s.mu.RUnlock()
	if !ok {
		return &Prefs{}, nil
	}
	return decode(person, b)
}

// Update implements Store.
func (s *Memory) Update(_ context.Context, person string, fn func(*Prefs) error) (*Prefs, error) {
	if err := CheckPerson(person); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &Prefs{}
	if b, ok := s.m[person]; ok {
		var err error
		if p, err = decode(person, b); err != nil {
			return nil, err
		}
	}
	if err := fn(p); err != nil {
		return nil, err
	}
	p.tidy()
	if p.Empty() {
		delete(s.m, person)
		return &Prefs{}, nil
	}
	b, err := encode(p)
	if err != nil {
		return nil, err
	}
	s.m[person] = b
	return decode(person, b)
}

// Lookup implements Store.
func (s *Memory) Lookup(_ context.Context, persons []string) (map[string]*Prefs, error) {
	var out map[string]*Prefs // nil while nobody found has stored any, as Redis's
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, person := range persons {
		b, ok := s.m[person]
		if !ok {
			continue
		}
		p, err := decode(person, b)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]*Prefs{}
		}
		out[person] = p
	}
	return out, nil
}

// Close implements Store.
func (s *Memory) Close() error { return nil }
