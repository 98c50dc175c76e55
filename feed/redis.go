package feed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the Redis key prefix of the feeds, and DefaultChannel
// the pub/sub channel their changes go to.
const (
	DefaultPrefix  = "herald:feed:"
	DefaultChannel = "herald:feed:changes"
)

// Key layout
//
// A person's feed is five keys sharing the hash tag {<person id>}, so every
// script touches one slot and works unchanged on Redis Cluster:
//
//	herald:feed:{p}:s   stream: the items, id = position, fields n (notification id), i (item JSON)
//	herald:feed:{p}:h   hash: notification id → position, for the items the stream holds
//	herald:feed:{p}:r   hash: notification id → read time (Unix ms), for items the stream holds
//	herald:feed:{p}:n   sorted set: every notification id appended within MaxAge, scored by its
//	                    creation time; trimmed by age only, so a replay of an item that count
//	                    trimming already dropped is still recognised
//	herald:feed:{p}:u   string: the number of unread items the stream holds
//
// Append is one script: age-trim the id set, refuse an id it has, add the
// item at a position after the last (from the caller's clock, never going
// back), drop what is past MaxItems and MaxAge (adjusting the unread count
// for each), set the keys' expiry to MaxAge, and PUBLISH the change. The
// publication is in the script so that no crash can separate an added item
// from its announcement. Read is one script likewise.

// appendScript: KEYS s h r n u; ARGV id, item JSON, now ms, created ms,
// max items, min ms (now - max age), ttl ms, channel, person.
// Returns {pos, prev, added}.
var appendScript = redis.NewScript(`
local id, now, created = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
local maxItems, minMs, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. minMs)
if created < minMs then return {'', '', 0} end
if redis.call('ZSCORE', KEYS[4], id) then
  return {redis.call('HGET', KEYS[2], id) or '', '', 0}
end
local prev, pos = '', now .. '-0'
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  prev = last[1][1]
  local dash = string.find(prev, '-', 1, true)
  local lms, lseq = tonumber(string.sub(prev, 1, dash - 1)), tonumber(string.sub(prev, dash + 1))
  if now <= lms then pos = lms .. '-' .. (lseq + 1) end
end
redis.call('XADD', KEYS[1], pos, 'n', id, 'i', ARGV[2])
redis.call('HSET', KEYS[2], id, pos)
redis.call('ZADD', KEYS[4], created, id)
redis.call('INCR', KEYS[5])
local function drop(entries)
  for _, e in ipairs(entries) do
    local nid = e[2][2]
    if redis.call('HDEL', KEYS[3], nid) == 0 then redis.call('DECR', KEYS[5]) end
    redis.call('HDEL', KEYS[2], nid)
    redis.call('XDEL', KEYS[1], e[1])
  end
end
local over = redis.call('XLEN', KEYS[1]) - maxItems
if over > 0 then drop(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', over)) end
if minMs > 0 then drop(redis.call('XRANGE', KEYS[1], '-', tostring(minMs - 1), 'COUNT', 100)) end
for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ttl) end
redis.call('PUBLISH', ARGV[8], 'n\n' .. ARGV[9] .. '\n' .. pos .. '\n' .. prev .. '\n' .. ARGV[2])
return {pos, prev, 1}
`)

// readScript: KEYS h r u; ARGV id, read ms, read_at RFC 3339, channel,
// person. Returns {found, unread}.
var readScript = redis.NewScript(`
if not redis.call('HGET', KEYS[1], ARGV[1]) then
  return {0, tonumber(redis.call('GET', KEYS[3]) or '0')}
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  local u = redis.call('DECR', KEYS[3])
  redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
  redis.call('PUBLISH', ARGV[4], 'r\n' .. ARGV[5] .. '\n\n\n' ..
    '{"id":' .. cjson.encode(ARGV[1]) .. ',"read_at":"' .. ARGV[3] .. '","unread":' .. u .. '}')
  return {1, u}
end
return {1, tonumber(redis.call('GET', KEYS[3]) or '0')}
`)

// liveScript: KEYS l; ARGV key, version, data, ttl ms, channel, person.
// The hash holds "<version>\n<data>" per key. Returns 1 when recorded.
var liveScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local v = tonumber(string.sub(cur, 1, string.find(cur, '\n', 1, true) - 1))
  if v and v >= tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '\n' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], 'l\n' .. ARGV[6] .. '\n' .. ARGV[1] .. '\n\n' .. ARGV[3])
return 1
`)

// Redis is a Store on Redis (single, Sentinel or Cluster). It does not own
// the client.
type Redis struct {
	c       redis.UniversalClient
	prefix  string
	channel string
	limits  Limits
}

var _ Store = (*Redis)(nil)

// NewRedis returns feeds kept in c with limits (zero fields take
// DefaultLimits').
func NewRedis(c redis.UniversalClient, limits Limits) *Redis {
	return &Redis{c: c, prefix: DefaultPrefix, channel: DefaultChannel, limits: limits.withDefaults()}
}

func (l Limits) withDefaults() Limits {
	if l.MaxItems <= 0 {
		l.MaxItems = DefaultLimits.MaxItems
	}
	if l.MaxAge <= 0 {
		l.MaxAge = DefaultLimits.MaxAge
	}
	return l
}

func (r *Redis) key(person, k string) string { return r.prefix + "{" + person + "}:" + k }

// Append implements Store.
func (r *Redis) Append(ctx context.Context, person string, it Item, now time.Time) (Appended, error) {
	b, created, err := encode(person, it, now)
	if err != nil {
		return Appended{}, err
	}
	keys := []string{r.key(person, "s"), r.key(person, "h"), r.key(person, "r"), r.key(person, "n"), r.key(person, "u")}
	res, err := appendScript.Run(ctx, r.c, keys,
		it.ID, b, now.UnixMilli(), created.UnixMilli(), r.limits.MaxItems,
		now.Add(-r.limits.MaxAge).UnixMilli(), r.limits.MaxAge.Milliseconds(), r.channel, person,
	).Slice()
	if err != nil {
		return Appended{}, fmt.Errorf("feed: append: %w", err)
	}
	if len(res) != 3 {
		return Appended{}, errors.New("feed: append: unexpected reply")
	}
	pos, _ := res[0].(string)
	added, _ := res[2].(int64)
	return Appended{Pos: pos, Added: added == 1}, nil
}

// List implements Store.
func (r *Redis) List(ctx context.Context, person string, limit int) ([]Item, int, error) {
	if err := CheckPerson(person); err != nil {
		return nil, 0, invalid("person: %v", err)
	}
	if limit <= 0 {
		return nil, 0, invalid("limit %d", limit)
	}
	var xs *redis.XMessageSliceCmd
	var u *redis.StringCmd
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		xs = p.XRevRangeN(ctx, r.key(person, "s"), "+", "-", int64(limit))
		u = p.Get(ctx, r.key(person, "u"))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("feed: list: %w", err)
	}
	items, err := r.items(ctx, person, xs.Val())
	if err != nil {
		return nil, 0, err
	}
	unread, _ := strconv.Atoi(u.Val())
	return items, max(unread, 0), nil
}

// After implements Store.
func (r *Redis) After(ctx context.Context, person, pos string, limit int) ([]Item, error) {
	if err := CheckPerson(person); err != nil {
		return nil, invalid("person: %v", err)
	}
	start := "-"
	if pos != "" {
		if _, _, err := ParsePos(pos); err != nil {
			return nil, err
		}
		start = "(" + pos
	}
	xs, err := r.c.XRangeN(ctx, r.key(person, "s"), start, "+", int64(limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("feed: after: %w", err)
	}
	return r.items(ctx, person, xs)
}

// Last implements Store.
func (r *Redis) Last(ctx context.Context, person string) (string, error) {
	if err := CheckPerson(person); err != nil {
		return "", invalid("person: %v", err)
	}
	xs, err := r.c.XRevRangeN(ctx, r.key(person, "s"), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("feed: last: %w", err)
	}
	if len(xs) == 0 {
		return "", nil
	}
	return xs[0].ID, nil
}

// items decodes stream entries and fills in their read times.
func (r *Redis) items(ctx context.Context, person string, xs []redis.XMessage) ([]Item, error) {
	if len(xs) == 0 {
		return []Item{}, nil
	}
	out := make([]Item, 0, len(xs))
	ids := make([]string, 0, len(xs))
	for _, x := range xs {
		s, _ := x.Values["i"].(string)
		it, err := decode([]byte(s), x.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
		ids = append(ids, it.ID)
	}
	reads, err := r.c.HMGet(ctx, r.key(person, "r"), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("feed: read marks: %w", err)
	}
	for i, v := range reads {
		if s, ok := v.(string); ok {
			if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
				t := time.UnixMilli(ms).UTC()
				out[i].ReadAt = &t
			}
		}
	}
	return out, nil
}

// Read implements Store.
func (r *Redis) Read(ctx context.Context, person, id string, at time.Time) (int, bool, error) {
	if err := CheckPerson(person); err != nil {
		return 0, false, invalid("person: %v", err)
	}
	at = at.UTC().Truncate(time.Millisecond)
	res, err := readScript.Run(ctx, r.c,
		[]string{r.key(person, "h"), r.key(person, "r"), r.key(person, "u")},
		id, at.UnixMilli(), at.Format(time.RFC3339Nano), r.channel, person,
	).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("feed: read: %w", err)
	}
	return int(max(res[1], 0)), res[0] == 1, nil
}

// SetLive implements Store.
func (r *Redis) SetLive(ctx context.Context, person, key string, version int64, data []byte) (bool, error) {
	if err := checkLive(person, key, data); err != nil {
		return false, err
	}
	n, err := liveScript.Run(ctx, r.c, []string{r.key(person, "l")},
		key, version, data, LiveTTL.Milliseconds(), r.channel, person).Int()
	if err != nil {
		return false, fmt.Errorf("feed: set live: %w", err)
	}
	return n == 1, nil
}

// Live implements Store.
func (r *Redis) Live(ctx context.Context, person string) (map[string][]byte, error) {
	if err := CheckPerson(person); err != nil {
		return nil, invalid("person: %v", err)
	}
	m, err := r.c.HGetAll(ctx, r.key(person, "l")).Result()
	if err != nil {
		return nil, fmt.Errorf("feed: live: %w", err)
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		if _, data, ok := strings.Cut(v, "\n"); ok {
			out[k] = []byte(data)
		}
	}
	return out, nil
}

// Subscribe implements Store: one pub/sub connection, re-established by
// the client after a failure, each re-establishment reported as a
// KindResync change since changes published meanwhile are lost to it.
func (r *Redis) Subscribe(ctx context.Context, fn func(Change)) error {
	ps := r.c.Subscribe(ctx, r.channel)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { ps.Close() }) // Receive does not watch ctx
	defer stop()
	subscribed, lost := false, false
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			lost = true
			select { // the client reconnects on the next Receive
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				if subscribed || lost {
					fn(Change{Kind: KindResync})
				}
				subscribed, lost = true, false
			}
		case *redis.Message:
			if c, ok := parseChange(m.Payload); ok {
				fn(c)
			}
		}
	}
}

// parseChange reads what the scripts publish: kind, person, pos, prev and
// data, separated by newlines (none of the first four can hold one).
func parseChange(p string) (Change, bool) {
	b := []byte(p)
	var parts [4][]byte
	for i := range parts {
		j := bytes.IndexByte(b, '\n')
		if j < 0 {
			return Change{}, false
		}
		parts[i], b = b[:j], b[j+1:]
	}
	if len(parts[0]) != 1 {
		return Change{}, false
	}
	return Change{Kind: Kind(parts[0][0]), Person: string(parts[1]), Pos: string(parts[2]), Prev: string(parts[3]), Data: b}, true
}
