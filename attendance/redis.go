package attendance

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the Redis key prefix of the classes.
const DefaultPrefix = "herald:attendance:"

// Key layout
//
// A class's state is three keys sharing the hash tag {<class id>}, so that
// Redis Cluster puts them in one slot and each script below runs on one
// node:
//
//	herald:attendance:{<class id>}:m   hash, the class
//	  cap        latest positive capacity
//	  closed     "1" once closed
//	  ver        version: count of changes
//	  crossings  count of busy crossings
//	  disarmed   "1" from a crossing until the count falls below need
//	  pending    crossing number awaiting publication
//	  published  last version marked published
//	herald:attendance:{<class id>}:b   set, confirmed booking ids
//	herald:attendance:{<class id>}:t   set, tombstoned (cancelled) booking ids
//
// Absent fields read as 0 / false, so a class springs into being with its
// first operation and needs no initialisation. Every Apply sets every key's
// expiry to the op's TTL (in the same script, so all three expire
// together); MarkBusyPublished and MarkPublished only modify an existing
// hash and never create a key, so nothing is left without an expiry.
//
// A class id is used as is inside the braces unless it holds '{', '}' or
// '%', which are percent-encoded (%7B, %7D, %25): a '}' would end the hash
// tag early and an id starting with one would make an empty tag, which
// Redis ignores, scattering the class's keys over three slots. The
// encoding is reversible, so two ids never share keys.

// applyScript: KEYS meta, booked, tombstones; ARGV kind ("add", "remove",
// "close"), booking id, capacity, need, ttl ms. Returns {capacity, closed,
// confirmed, version, crossings, changed, pending, published}.
//
// Under a closed class nothing changes but the keys' expiry. Otherwise a
// positive capacity is stored, and the op is applied to the sets: an add
// lands unless its booking is tombstoned, a remove tombstones its booking
// and takes it out of the set, a close sets closed. Only an op that
// changed the set or closed the class bumps the version and moves the busy
// state, so a redelivery (with whatever need it carries) can neither cross
// nor re-arm.
var applyScript = redis.NewScript(`
local meta, booked, tombs = KEYS[1], KEYS[2], KEYS[3]
local kind, booking = ARGV[1], ARGV[2]
if kind ~= 'add' and kind ~= 'remove' and kind ~= 'close' then
  return redis.error_reply('ERR attendance: unknown kind ' .. kind)
end
local need = tonumber(ARGV[4])
local closed = redis.call('HGET', meta, 'closed') == '1'
local changed = 0
if not closed then
  if tonumber(ARGV[3]) > 0 then
    redis.call('HSET', meta, 'cap', ARGV[3])
  end
  if kind == 'add' then
    if redis.call('SISMEMBER', tombs, booking) == 0 then
      changed = redis.call('SADD', booked, booking)
    end
  elseif kind == 'remove' then
    redis.call('SADD', tombs, booking)
    changed = redis.call('SREM', booked, booking)
  else
    redis.call('HSET', meta, 'closed', '1')
    closed = true
    changed = 1
  end
end
local count = redis.call('SCARD', booked)
if changed == 1 then
  redis.call('HINCRBY', meta, 'ver', 1)
  if not closed and need > 0 then
    if count >= need then
      if redis.call('HGET', meta, 'disarmed') ~= '1' then
        local n = redis.call('HINCRBY', meta, 'crossings', 1)
        redis.call('HSET', meta, 'disarmed', '1', 'pending', string.format('%d', n))
      end
    else
      redis.call('HDEL', meta, 'disarmed')
    end
  end
end
for _, k in ipairs(KEYS) do
  redis.call('PEXPIRE', k, ARGV[5])
end
local v = redis.call('HMGET', meta, 'cap', 'ver', 'crossings', 'pending', 'published')
return {tonumber(v[1]) or 0, closed and 1 or 0, count, tonumber(v[2]) or 0,
  tonumber(v[3]) or 0, changed, tonumber(v[4]) or 0, tonumber(v[5]) or 0}
`)

// getScript: KEYS meta, booked. Returns what applyScript returns, with
// changed 0; one script so the count and the hash are one snapshot.
var getScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'cap', 'closed', 'ver', 'crossings', 'pending', 'published')
return {tonumber(v[1]) or 0, v[2] == '1' and 1 or 0, redis.call('SCARD', KEYS[2]),
  tonumber(v[3]) or 0, tonumber(v[4]) or 0, 0, tonumber(v[5]) or 0, tonumber(v[6]) or 0}
`)

// markBusyScript: KEYS meta; ARGV crossing. Clears pending if it is that
// crossing.
var markBusyScript = redis.NewScript(`
local p = redis.call('HGET', KEYS[1], 'pending')
if p and tonumber(p) == tonumber(ARGV[1]) then
  redis.call('HDEL', KEYS[1], 'pending')
  return 1
end
return 0
`)

// markPublishedScript: KEYS meta; ARGV version. Raises published to
// min(version, ver); an absent hash has ver 0, so it is never created.
var markPublishedScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'ver', 'published')
local want = math.min(tonumber(ARGV[1]), tonumber(v[1]) or 0)
if want > (tonumber(v[2]) or 0) then
  redis.call('HSET', KEYS[1], 'published', string.format('%d', want))
  return 1
end
return 0
`)

// Redis is a Store in Redis. Each method is one script on one class's
// keys, hence one round trip and atomic per class. It works on a single
// server, behind Sentinel and on Redis Cluster alike.
//
// Counters are Lua numbers inside the scripts, exact up to 2^53.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on client with keys under prefix ("" means
// DefaultPrefix). The client stays the caller's. It panics if prefix holds
// '{' or '}': a hash tag in the prefix would decide the slot instead of the
// class id (or, empty, split a class's keys over slots).
func NewRedis(c redis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		panic(fmt.Sprintf("attendance: key prefix %q must not contain '{' or '}'", prefix))
	}
	return &Redis{client: c, prefix: prefix}
}

// tagEscaper percent-encodes the characters that would break a hash tag,
// and '%' itself so that the encoding stays reversible.
var tagEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

// keys returns the class's meta, booked and tombstone keys.
func (r *Redis) keys(classID string) []string {
	base := r.prefix + "{" + tagEscaper.Replace(classID) + "}:"
	return []string{base + "m", base + "b", base + "t"}
}

// Apply implements Store.
func (r *Redis) Apply(ctx context.Context, op Op) (State, error) {
	if err := validate(op); err != nil {
		return State{}, err
	}
	booking := op.BookingID
	if op.Kind == Close {
		booking = ""
	}
	res, err := applyScript.Run(ctx, r.client, r.keys(op.ClassID),
		op.Kind.String(), booking, op.Capacity, op.Need, ttlMillis(op.TTL)).Int64Slice()
	if err != nil {
		return State{}, unavailable("apply "+op.Kind.String()+" to", op.ClassID, err)
	}
	return decode(op.ClassID, res)
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, classID string) (State, error) {
	if err := checkClassID(classID); err != nil {
		return State{}, err
	}
	res, err := getScript.Run(ctx, r.client, r.keys(classID)[:2]).Int64Slice()
	if err != nil {
		return State{}, unavailable("get", classID, err)
	}
	return decode(classID, res)
}

// MarkBusyPublished implements Store.
func (r *Redis) MarkBusyPublished(ctx context.Context, classID string, crossing int64) error {
	if err := checkClassID(classID); err != nil {
		return err
	}
	if crossing <= 0 {
		return nil // no crossing is numbered 0; nothing to clear
	}
	err := markBusyScript.Run(ctx, r.client, r.keys(classID)[:1], strconv.FormatInt(crossing, 10)).Err()
	if err != nil {
		return unavailable("mark busy published for", classID, err)
	}
	return nil
}

// MarkPublished implements Store.
func (r *Redis) MarkPublished(ctx context.Context, classID string, version int64) error {
	if err := checkClassID(classID); err != nil {
		return err
	}
	if version <= 0 {
		return nil // published starts at 0; nothing to raise
	}
	err := markPublishedScript.Run(ctx, r.client, r.keys(classID)[:1], strconv.FormatInt(version, 10)).Err()
	if err != nil {
		return unavailable("mark published for", classID, err)
	}
	return nil
}

// decode turns a script's reply into a State.
func decode(classID string, v []int64) (State, error) {
	if len(v) != 8 {
		return State{}, unavailable("decode", classID, fmt.Errorf("script returned %d values, want 8", len(v)))
	}
	return State{
		ClassID:     classID,
		Capacity:    int(v[0]),
		Closed:      v[1] == 1,
		Confirmed:   int(v[2]),
		Version:     v[3],
		Crossings:   v[4],
		Changed:     v[5] == 1,
		PendingBusy: v[6],
		Unpublished: v[3] > v[7],
	}, nil
}
