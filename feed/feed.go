// Package feed keeps each person's in-app feed: the notifications the inapp
// channel delivered to them, newest first, each with its read state, and
// the changes that the gateway pushes to the person's open sessions.
//
// A feed holds one item per notification id, ever: Append of an id the
// feed has seen (a replay, a redelivery after a rebalance, a retry after a
// crash between the append and the offset commit) changes nothing and
// tells no session. "Ever" is bounded by the feed's age limit: an item
// older than MaxAge is refused, so a replay of a notification the feed has
// forgotten cannot bring it back.
//
// Every item has a position in its person's feed: a string "<ms>-<seq>",
// increasing with every append. The gateway sends it as the Server-Sent
// Events id, and a reconnecting client's Last-Event-ID is resumed with
// After, which returns exactly the items appended after it that the feed
// still holds: no duplicates, no gaps within the feed's bounds.
//
// Feeds are bounded by count (MaxItems, the oldest items go first) and by
// age (MaxAge); an idle feed's keys expire MaxAge after its last append.
//
// Two Stores: Redis (production: feeds survive any pod's restart, and
// every gateway pod sees every change through Redis pub/sub) and Memory
// (herald dev on one process, and tests).
package feed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Item is one notification in a person's feed, as GET /v1/feed and the
// stream show it.
type Item struct {
	// ID is the notification id.
	ID        string            `json:"id"`
	EventID   string            `json:"event_id"`
	EventType string            `json:"event_type"`
	Title     string            `json:"title"`
	Body      string            `json:"body"`
	Data      map[string]string `json:"data"`
	CreatedAt time.Time         `json:"created_at"`
	ReadAt    *time.Time        `json:"read_at"`

	// Pos is the item's position in the feed; the stream's event id.
	Pos string `json:"-"`
}

// Limits bound every feed.
type Limits struct {
	// MaxItems is the most items a feed keeps; the oldest go first.
	MaxItems int
	// MaxAge is how long an item stays; an idle feed expires after it.
	MaxAge time.Duration
}

// DefaultLimits are the limits when none are configured.
var DefaultLimits = Limits{MaxItems: 200, MaxAge: 30 * 24 * time.Hour}

// Appended is what Append did.
type Appended struct {
	// Pos is the item's position: the new one, or the one it already had
	// (empty when the feed no longer holds it).
	Pos string
	// Added is false when the feed had the notification already, or the
	// item is older than MaxAge.
	Added bool
}

// Kind is what a Change is about.
type Kind byte

const (
	// KindItem is a new item: Data is its JSON (read_at null).
	KindItem Kind = 'n'
	// KindRead is an item marked read: Data is {"id","read_at","unread"}.
	KindRead Kind = 'r'
	// KindLive is a live value (a class's attendance on a staff
	// dashboard): Pos is its key, Data its JSON.
	KindLive Kind = 'l'
	// KindResync says changes may have been missed (the subscription to
	// Redis was re-established): every session should catch up with After
	// from its own position.
	KindResync Kind = 's'
)

// Change is one change to a feed, as every gateway pod receives it.
type Change struct {
	Kind   Kind
	Person string
	// Pos is the item's position (KindItem), and Prev the feed's last
	// position before it ("" for a feed's first): a session at Prev can
	// send Data as it is, any other must catch up with After.
	Pos, Prev string
	Data      []byte
}

// Store is a set of feeds. Methods are safe for concurrent use.
type Store interface {
	// Append adds it to person's feed unless the feed has it.ID already.
	// it.CreatedAt, when zero, is now; it.ReadAt is ignored. A new item
	// is published as a KindItem Change in the same step, so an item is
	// never added without every subscriber hearing of it.
	Append(ctx context.Context, person string, it Item, now time.Time) (Appended, error)
	// List returns up to limit items, newest first, and the number of
	// unread items in the whole feed.
	List(ctx context.Context, person string, limit int) ([]Item, int, error)
	// After returns up to max items appended after pos, oldest first.
	// pos "" means from the start of the feed.
	After(ctx context.Context, person, pos string, max int) ([]Item, error)
	// Last returns the position of the newest item, "" for an empty feed.
	Last(ctx context.Context, person string) (string, error)
	// Read marks the item read at at; marking it again changes nothing.
	// found is false when the feed does not hold id. A first mark is
	// published as a KindRead Change.
	Read(ctx context.Context, person, id string, at time.Time) (unread int, found bool, err error)
	// SetLive records data as person's live value under key (a class id)
	// unless the value held has a version at least as new, and publishes
	// a recorded one as a KindLive change. Live values are state, not
	// history: a dashboard shows the latest, so only the latest is kept,
	// for LiveTTL after its last change.
	SetLive(ctx context.Context, person, key string, version int64, data []byte) (bool, error)
	// Live returns person's live values by key.
	Live(ctx context.Context, person string) (map[string][]byte, error)
	// Subscribe delivers every Change of every feed to fn, from one
	// goroutine, until ctx ends. It returns when ctx ends.
	Subscribe(ctx context.Context, fn func(Change)) error
}

// personRE is what a person id may be: the JWT sub the gateway accepts
// (gateway/jwtauth) and the inapp channel's address rule.
var personRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$`)

// CheckPerson reports whether id can name a feed.
func CheckPerson(id string) error {
	if !personRE.MatchString(id) {
		return errors.New("not a person id (1-128 of A-Z a-z 0-9 _ . : @ -, starting with a letter or digit)")
	}
	return nil
}

// LiveTTL is how long a person's live values stay after their last
// change.
const LiveTTL = 7 * 24 * time.Hour

// MaxItemBytes bounds one item's JSON: an item is a title, a body of a few
// hundred characters and a few data keys.
const MaxItemBytes = 16 << 10

// ErrInvalid marks a call with arguments no feed can take.
var ErrInvalid = errors.New("feed: invalid")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// encode checks an item for Append and returns its stored JSON.
func encode(person string, it Item, now time.Time) ([]byte, time.Time, error) {
	if err := CheckPerson(person); err != nil {
		return nil, time.Time{}, invalid("person: %v", err)
	}
	if it.ID == "" || len(it.ID) > 256 {
		return nil, time.Time{}, invalid("an item needs an id of at most 256 bytes")
	}
	created := it.CreatedAt
	if created.IsZero() {
		created = now
	}
	created = created.UTC().Truncate(time.Millisecond)
	data := it.Data
	if data == nil {
		data = map[string]string{}
	}
	// Stored as shown, read_at null: the read mark is kept beside it.
	b, err := json.Marshal(Item{
		ID: it.ID, EventID: it.EventID, EventType: it.EventType, Title: it.Title, Body: it.Body,
		Data: data, CreatedAt: created,
	})
	if err != nil {
		return nil, time.Time{}, invalid("item: %v", err)
	}
	if len(b) > MaxItemBytes {
		return nil, time.Time{}, invalid("item is %d bytes encoded; a feed item is at most %d", len(b), MaxItemBytes)
	}
	return b, created, nil
}

// decode is the inverse of encode.
func decode(b []byte, pos string) (Item, error) {
	var it Item
	if err := json.Unmarshal(b, &it); err != nil {
		return Item{}, fmt.Errorf("feed: stored item at %s: %w", pos, err)
	}
	it.Pos, it.ReadAt = pos, nil
	return it, nil
}

// ParsePos checks a position (a client's Last-Event-ID): "<ms>-<seq>".
func ParsePos(s string) (ms, seq uint64, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		if ms, err = strconv.ParseUint(a, 10, 64); err == nil {
			if seq, err = strconv.ParseUint(b, 10, 64); err == nil {
				return ms, seq, nil
			}
		}
	}
	return 0, 0, invalid("%.40q is not a feed position (<ms>-<seq>)", s)
}

// checkLive checks SetLive's arguments.
func checkLive(person, key string, data []byte) error {
	if err := CheckPerson(person); err != nil {
		return invalid("person: %v", err)
	}
	if key == "" || len(key) > 256 || strings.ContainsAny(key, "\n") {
		return invalid("a live key is 1-256 bytes without a newline")
	}
	if len(data) > MaxItemBytes {
		return invalid("live value is %d bytes; at most %d", len(data), MaxItemBytes)
	}
	return nil
}

// ReadJSON is the Data of a KindRead change.
type ReadJSON struct {
	ID     string    `json:"id"`
	ReadAt time.Time `json:"read_at"`
	Unread int       `json:"unread"`
}

// Later reports whether position a comes after b; "" comes before every
// position, and a malformed position before every well-formed one.
func Later(a, b string) bool {
	am, as, aerr := ParsePos(a)
	bm, bs, berr := ParsePos(b)
	switch {
	case aerr != nil:
		return false
	case berr != nil:
		return true
	}
	return am > bm || (am == bm && as > bs)
}
