package schedule

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the Redis key prefix of the index.
const DefaultPrefix = "herald:sched"

// Key layout
//
// Every key is Prefix + ":{s}:" + a name. The one hash tag puts the whole
// index in one slot, so that each operation is a single script over all of
// it, atomic on Redis Cluster as on a single server:
//
//	due           zset  id → due, Unix ms                   (pending)
//	lease         zset  id → lease end, Unix ms             (leased)
//	rec           hash  id → encoded record                 (pending or leased)
//	at            hash  id → due, Unix ms                   (pending or leased)
//	ek            hash  id → cancel keys, a JSON array      (those with keys)
//	k:<cancel key> set  ids carrying the key                (pending or leased)
//	tomb          zset  cancel key → tombstone expiry, Unix ms
//	tat           hash  cancel key → "<upTo>|<expiry>": the latest event time,
//	                    Unix ms, its tombstone covers, valid while the
//	                    tombstone's expiry is still <expiry> (else: any)
//	et            hash  id → its event's time, Unix ms  (those with keys and a time)
//	done          zset  id → done mark expiry, Unix ms
//	fresh         zset  id → when a new copy of its record must be
//	                    written to the topic, Unix ms (those whose record
//	                    the topic drops before their due time)
//	ready         hash  partition → "1"
//	lock:<p>      string owner of partition p's rebuild lock, expiring (PX)
//
// An entry is in exactly one of due and lease; Due moves it to lease, so it
// finds the next entries without stepping over leased ones. at keeps the
// due time of a leased entry, to hand ended leases out in due order. The
// cancel keys are JSON (cjson in the scripts) rather than joined by a
// separator because they carry event data, which may hold any byte.
//
// Tombstones and done marks are members scored by their expiry, not keys
// with a TTL: an expired one is ignored at once, and Add, Cancel and Done
// each delete up to trimBatch of them, so no call does unbounded work.
// Nothing else expires: the index must be kept whole (maxmemory-policy
// noeviction), or rebuilt when its ready marks are gone. Due drops the
// ready marks itself when it finds an entry without its record.

// trimBatch bounds how many expired tombstones and done marks one call
// deletes (of each). Calls come far more often than marks expire in bulk.
const trimBatch = 1000

// RedisOptions configure a Redis index.
type RedisOptions struct {
	// Prefix starts every key; default DefaultPrefix. Tests and benchmarks
	// give each its own.
	Prefix string
	// Clock is the time tombstones and done marks are set and expire by
	// (Add, Cancel, Done, Lookup); default time.Now. Due takes its time
	// from the caller and rebuild locks expire by the server's clock.
	Clock func() time.Time
}

// libLua is the part of the scripts that Add, Cancel, Done and Due share.
// Their KEYS are always due, lease, rec, at, ek, tomb, done, tat, et, fresh;
// ARGV[1] is the key prefix, for the k:<cancel key> sets. (An earlier
// release's scripts take the first nine and leave fresh alone: Stale drops
// members whose entry is gone.)
//
// The scripts gather their writes and send each kind as one command of
// many arguments (in steps, for unpack's bounded stack): a batch of a
// hundred entries costs about a third of what a command per entry does.
const libLua = `
local kDue, kLease, kRec, kAt, kEK, kTomb, kDone, kTombAt, kET, kFresh = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local base = ARGV[1]
local step = 1000

-- bulk runs cmd on key with args, a flat list, in steps (even, so a list of
-- pairs is never split).
local function bulk(cmd, key, args)
  for i = 1, #args, step do
    redis.call(cmd, key, unpack(args, i, math.min(i + step - 1, #args)))
  end
end

-- hmget is HMGET of any number of fields; a missing one is false.
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, step do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + step - 1, #fields)))
    for j = 1, #part do
      out[#out + 1] = part[j]
    end
  end
  return out
end

-- trim deletes up to %d members of the zset key that expired at or before
-- now, and their fields of the hash also, when given (a tombstone's time).
local function trim(key, now, also)
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, %d)
  if #old > 0 then
    redis.call('ZREM', key, unpack(old))
    if also then
      redis.call('HDEL', also, unpack(old))
    end
  end
end

-- live is whether the zset key holds member with an expiry after now.
local function live(key, member, now)
  local s = redis.call('ZSCORE', key, member)
  return s and tonumber(s) > now
end

-- mark sets member's expiry in the zset key unless it already lasts longer.
local function mark(key, member, untilMs)
  local s = redis.call('ZSCORE', key, member)
  if not s or tonumber(s) < untilMs then
    redis.call('ZADD', key, untilMs, member)
  end
end

-- tombTime is what key k's tombstone covers at now: nil when it has none
-- live, false when it covers any event, else the latest event time it
-- covers. A time recorded for another expiry than the tombstone's is not
-- this tombstone's: an earlier release's scheduler (a rolling deploy, a
-- rollback), which knows no event times, extended it, covering any.
local function tombTime(k, now)
  local exp = redis.call('ZSCORE', kTomb, k)
  if not exp or tonumber(exp) <= now then
    return nil
  end
  local v = redis.call('HGET', kTombAt, k)
  local upTo, at = string.match(v or '', '^(%%-?%%d+)|(%%d+)$')
  if not upTo or tonumber(at) ~= tonumber(exp) then
    return false
  end
  return tonumber(upTo)
end

-- covers is whether key k's tombstone, live at now, covers an entry of
-- event time t ('' or false: unknown, covered by any).
local function covers(k, t, now)
  local upTo = tombTime(k, now)
  if upTo == nil then
    return false
  end
  return not upTo or not t or t == '' or tonumber(t) <= upTo
end

-- removeAll drops pending or leased entries from every structure; ids
-- that are neither cost nothing but the look-up.
local function removeAll(ids)
  if #ids == 0 then
    return
  end
  local eks = hmget(kEK, ids)
  for i, id in ipairs(ids) do
    if eks[i] then
      for _, k in ipairs(cjson.decode(eks[i])) do
        redis.call('SREM', base .. 'k:' .. k, id)
      end
    end
  end
  bulk('ZREM', kDue, ids)
  bulk('ZREM', kLease, ids)
  bulk('HDEL', kRec, ids)
  bulk('HDEL', kAt, ids)
  bulk('HDEL', kEK, ids)
  bulk('HDEL', kET, ids)
  bulk('ZREM', kFresh, ids)
end
`

// script is one operation: libLua and body.
func script(body string) *redis.Script {
	return redis.NewScript(fmt.Sprintf(libLua, trimBatch, trimBatch) + body)
}

// addScript: ARGV prefix, now ms, then for each entry id, due ms, event
// time ms (empty when unknown), refresh time ms (empty when none), number
// of keys, the keys, record. Returns the ids not indexed for a tombstone.
//
// A copy of an entry indexed already (or earlier in the batch) touches
// only its refresh time: one that lasts clears it, one that does not
// raises it, and an entry without one keeps none (Index.Add).
var addScript = script(`
local now = tonumber(ARGV[2])
trim(kTomb, now, kTombAt)
trim(kDone, now)
local cancelled, seen = {}, {}
local dues, recs, ats, eks, ets = {}, {}, {}, {}, {}
local i = 3
while i <= #ARGV do
  local id, due, et, fr, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
  local keys = {}
  for j = 1, n do
    keys[j] = ARGV[i + 4 + j]
  end
  local rec = ARGV[i + 5 + n]
  i = i + 6 + n
  if live(kDone, id, now) then
    -- fired: nothing to refresh
  elseif seen[id] or redis.call('HEXISTS', kRec, id) == 1 then
    if fr == '' then
      redis.call('ZREM', kFresh, id)
    else
      local s = redis.call('ZSCORE', kFresh, id)
      if s and tonumber(s) < tonumber(fr) then
        redis.call('ZADD', kFresh, fr, id)
      end
    end
  else
    local tombstoned = false
    for _, k in ipairs(keys) do
      if covers(k, et, now) then
        tombstoned = true
        break
      end
    end
    if tombstoned then
      cancelled[#cancelled + 1] = id
    else
      seen[id] = true -- written below, after the loop
      if fr ~= '' then
        redis.call('ZADD', kFresh, fr, id)
      else
        -- a member an earlier release's scripts left when they removed
        -- the entry is not this entry's
        redis.call('ZREM', kFresh, id)
      end
      dues[#dues + 1], dues[#dues + 2] = due, id
      recs[#recs + 1], recs[#recs + 2] = id, rec
      ats[#ats + 1], ats[#ats + 2] = id, due
      if n > 0 then
        eks[#eks + 1], eks[#eks + 2] = id, cjson.encode(keys)
        for _, k in ipairs(keys) do
          redis.call('SADD', base .. 'k:' .. k, id)
        end
        if et ~= '' then
          ets[#ets + 1], ets[#ets + 2] = id, et
        end
      end
    end
  end
end
bulk('ZADD', kDue, dues)
bulk('HSET', kRec, recs)
bulk('HSET', kAt, ats)
bulk('HSET', kEK, eks)
bulk('HSET', kET, ets)
return cancelled
`)

// cancelScript: ARGV prefix, now ms, tombstone expiry ms, then for each
// cancellation its key and event time ms (empty when unknown). Returns, for
// each entry removed, the index of the cancellation that removed it (from
// 0, in ARGV's order), its id and its record. The cancellations apply in
// order, as so many calls would: an entry is removed, and returned, once,
// by the first that covers it.
var cancelScript = script(`
local now, untilMs = tonumber(ARGV[2]), tonumber(ARGV[3])
trim(kTomb, now, kTombAt)
trim(kDone, now)
local cancelled = {}
for i = 4, #ARGV, 2 do
  local k, at = ARGV[i], ARGV[i + 1]
  local upTo = tombTime(k, now) -- nil: none live, false: any
  if at == '' or upTo == false then
    upTo = false
  elseif upTo == nil or upTo < tonumber(at) then
    upTo = tonumber(at)
  end
  mark(kTomb, k, untilMs)
  if upTo then
    redis.call('HSET', kTombAt, k, string.format('%.0f|%s', upTo, redis.call('ZSCORE', kTomb, k)))
  else
    redis.call('HDEL', kTombAt, k)
  end
  local ids = {}
  for _, id in ipairs(redis.call('SMEMBERS', base .. 'k:' .. k)) do
    if redis.call('ZSCORE', kDue, id) then
      local t = upTo and redis.call('HGET', kET, id)
      if not upTo or not t or tonumber(t) <= upTo then
        ids[#ids + 1] = id
        cancelled[#cancelled + 1] = tostring((i - 4) / 2)
        cancelled[#cancelled + 1] = id
        cancelled[#cancelled + 1] = redis.call('HGET', kRec, id) or ''
      end
    end
  end
  removeAll(ids) -- before the next key, whose set may hold them too
end
return cancelled
`)

// doneScript: ARGV prefix, now ms, done mark expiry ms, then the ids.
var doneScript = script(`
local now, untilMs = tonumber(ARGV[2]), tonumber(ARGV[3])
trim(kTomb, now, kTombAt)
trim(kDone, now)
local ids, marks = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  ids[#ids + 1] = id
  local s = redis.call('ZSCORE', kDone, id)
  if not s or tonumber(s) < untilMs then
    marks[#marks + 1], marks[#marks + 2] = untilMs, id
  end
end
removeAll(ids)
bulk('ZADD', kDone, marks)
return 0
`)

// dueScript: ARGV prefix, now ms, limit, lease end ms. Returns id, due ms,
// keys, record for each entry leased.
//
// Candidates are the first limit pending entries by due and the first
// limit ended leases by lease end; the earliest due of them are leased.
// Ties go by id, compared bytewise as zsets compare members (Lua's < on
// strings follows the server's locale).
var dueScript = script(`
local now, limit, untilMs = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local cand = {}
local pending = redis.call('ZRANGEBYSCORE', kDue, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #pending, 2 do
  cand[#cand + 1] = {pending[i], tonumber(pending[i + 1])}
end
local ended = redis.call('ZRANGEBYSCORE', kLease, '-inf', now, 'LIMIT', 0, limit)
for i, at in ipairs(hmget(kAt, ended)) do
  cand[#cand + 1] = {ended[i], tonumber(at or '0')}
end
-- The pending ones come in order already; ended leases are rare (a firer
-- died).
if #ended > 0 then
  table.sort(cand, function(x, y)
    if x[2] ~= y[2] then
      return x[2] < y[2]
    end
    local a, b = x[1], y[1]
    for j = 1, math.min(#a, #b) do
      local p, q = a:byte(j), b:byte(j)
      if p ~= q then
        return p < q
      end
    end
    return #a < #b
  end)
end
local ids = {}
for i = 1, math.min(limit, #cand) do
  ids[i] = cand[i][1]
end
local recs, eks = hmget(kRec, ids), hmget(kEK, ids)
local out, leased, lost = {}, {}, {}
for i, id in ipairs(ids) do
  if recs[i] then
    leased[#leased + 1], leased[#leased + 2] = untilMs, id
    out[#out + 1] = id
    out[#out + 1] = cand[i][2]
    out[#out + 1] = eks[i] and cjson.decode(eks[i]) or {}
    out[#out + 1] = recs[i]
  else
    -- Half an entry: Redis lost part of the index (an eviction, a
    -- hand-made DEL). Nothing to fire, and left alone it would come up
    -- every call; without the ready marks, the scheduler rebuilds the
    -- index from the topic before anything else fires.
    lost[#lost + 1] = id
  end
end
if #lost > 0 then
  removeAll(lost)
  redis.call('DEL', base .. 'ready')
end
bulk('ZREM', kDue, ids)
bulk('ZADD', kLease, leased)
return out
`)

// staleScript: ARGV prefix, now ms, limit, lease end ms. Returns id, due
// ms, keys, record for each entry leased, as dueScript does. A member
// whose entry is gone (fired or cancelled by an earlier release's
// scripts, which leave fresh alone) is dropped.
var staleScript = script(`
local now, limit, untilMs = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local ids = redis.call('ZRANGEBYSCORE', kFresh, '-inf', now, 'LIMIT', 0, limit)
local recs, eks, ats = hmget(kRec, ids), hmget(kEK, ids), hmget(kAt, ids)
local out, leased, gone = {}, {}, {}
for i, id in ipairs(ids) do
  if recs[i] then
    leased[#leased + 1], leased[#leased + 2] = untilMs, id
    out[#out + 1] = id
    out[#out + 1] = tonumber(ats[i] or '0')
    out[#out + 1] = eks[i] and cjson.decode(eks[i]) or {}
    out[#out + 1] = recs[i]
  else
    gone[#gone + 1] = id
  end
end
bulk('ZREM', kFresh, gone)
bulk('ZADD', kFresh, leased)
return out
`)

// lookupScript: KEYS due, lease, rec, at, ek, done; ARGV id, now ms.
// Returns {state, due ms, keys, record}, or {state} when there is no entry.
var lookupScript = redis.NewScript(`
local id = ARGV[1]
local state
if redis.call('ZSCORE', KEYS[2], id) then
  state = 'leased'
elseif redis.call('ZSCORE', KEYS[1], id) then
  state = 'pending'
else
  local s = redis.call('ZSCORE', KEYS[6], id)
  if s and tonumber(s) > tonumber(ARGV[2]) then
    return {'done'}
  end
  return {''}
end
local ks = redis.call('HGET', KEYS[5], id)
local keys = {}
if ks then
  keys = cjson.decode(ks)
end
return {state, tonumber(redis.call('HGET', KEYS[4], id) or '0'), keys, redis.call('HGET', KEYS[3], id)}
`)

// pendingScript: KEYS due, lease. Returns how many entries they hold.
var pendingScript = redis.NewScript(`
return redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
`)

// lockScript: KEYS[1] lock; ARGV owner, ttl ms. Returns 1 when owner holds
// the lock (taken, or already its own and extended), 0 when another does.
var lockScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// unlockScript: KEYS[1] lock; ARGV owner. Deletes the lock if owner holds it.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
`)

// Redis is the production Index: the state lives in Redis, so herald's own
// memory stays bounded however many notifications wait, and survives a
// restart of every replica. Every operation is one script (or, for the
// ready marks, one command), so each is atomic. Errors from Redis are
// returned as they are; the caller decides what they mean.
type Redis struct {
	c     redis.UniversalClient
	clock func() time.Time
	base  string   // Prefix + ":{s}:"
	keys  []string // due, lease, rec, at, ek, tomb, done, tat, et, fresh
	ready string
	// adds, dones and cancels make one script call of concurrent Add,
	// Done and Cancel calls (combiner).
	adds    *combiner[[]Entry, []string]
	dones   *combiner[doneCall, struct{}]
	cancels *combiner[cancelCall, []Entry]
}

// combineMax and combineMaxBytes bound a combined call of the add or done
// script: entries or ids, and their records' and ids' bytes (a record may
// be nearly a megabyte). A call bigger than either alone, as a rebuild's
// batch of 500 may be, is still one call, as before.
const (
	combineMax      = 512
	combineMaxBytes = 4 << 20
)

// doneCall is one Done call's ids and their done marks' ttl.
type doneCall struct {
	ids []string
	ttl time.Duration
}

// cancelCall is one Cancel call's cancellations and their tombstones' ttl.
type cancelCall struct {
	cs  []Cancellation
	ttl time.Duration
}

var _ Index = (*Redis)(nil)

// NewRedis returns an Index on c. The client stays the caller's: Close does
// not close it.
func NewRedis(c redis.UniversalClient, opts RedisOptions) *Redis {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	base := opts.Prefix + ":{s}:"
	r := &Redis{c: c, clock: opts.Clock, base: base, ready: base + "ready"}
	for _, name := range []string{"due", "lease", "rec", "at", "ek", "tomb", "done", "tat", "et", "fresh"} {
		r.keys = append(r.keys, base+name)
	}
	r.adds = &combiner[[]Entry, []string]{maxItems: combineMax, maxBytes: combineMaxBytes, run: r.runAdds,
		size: func(es []Entry) (items, bytes int) {
			for _, e := range es {
				bytes += len(e.ID) + len(e.Record)
				for _, k := range e.Keys {
					bytes += len(k)
				}
			}
			return len(es), bytes
		}}
	r.dones = &combiner[doneCall, struct{}]{maxItems: combineMax, maxBytes: combineMaxBytes, run: r.runDones,
		size: func(d doneCall) (items, bytes int) {
			for _, id := range d.ids {
				bytes += len(id)
			}
			return len(d.ids), bytes
		}}
	r.cancels = &combiner[cancelCall, []Entry]{maxItems: combineMax, maxBytes: combineMaxBytes, run: r.runCancels,
		size: func(c cancelCall) (items, bytes int) {
			for _, x := range c.cs {
				bytes += len(x.Key)
			}
			return len(c.cs), bytes
		}}
	return r
}

func (r *Redis) now() int64 { return r.clock().UnixMilli() }

// millisArg is t as the scripts take an event time: Unix milliseconds, or
// "" when t is zero (unknown).
func millisArg(t time.Time) any {
	if t.IsZero() {
		return ""
	}
	return t.UnixMilli()
}

// Add implements Index. Concurrent calls share one call of the add
// script (combiner).
func (r *Redis) Add(ctx context.Context, entries []Entry) ([]string, error) {
	if err := checkEntries(entries); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, nil
	}
	return r.adds.do(ctx, entries)
}

// runAdds runs the add script once on every call's entries and hands each
// call the ids of its own entries that the script turned away. The reply
// names ids, not entries: calls that share an id (two records of one wait
// with other keys, say) run one by one, as they did before calls were
// combined, so that each is told only of its own.
func (r *Redis) runAdds(ctx context.Context, calls []*joined[[]Entry, []string]) {
	if len(calls) > 1 && sharedID(calls) {
		for _, c := range calls {
			r.runAdds(ctx, []*joined[[]Entry, []string]{c})
		}
		return
	}
	n := 2
	for _, c := range calls {
		for _, e := range c.req {
			n += 6 + len(e.Keys)
		}
	}
	args := make([]any, 0, n)
	args = append(args, r.base, r.now())
	for _, c := range calls {
		for _, e := range c.req {
			args = append(args, e.ID, e.Due.UnixMilli(), millisArg(e.EventTime), millisArg(e.Refresh), len(e.Keys))
			for _, k := range e.Keys {
				args = append(args, k)
			}
			args = append(args, e.Record)
		}
	}
	v, err := addScript.Run(ctx, r.c, r.keys, args...).Result()
	var cancelled []string
	if err == nil {
		cancelled, err = stringsReply("add", v)
	}
	if err != nil || len(calls) == 1 {
		for _, c := range calls {
			c.ans, c.err = cancelled, err
		}
		return
	}
	turned := make(map[string]bool, len(cancelled))
	for _, id := range cancelled {
		turned[id] = true
	}
	for _, c := range calls {
		for _, e := range c.req {
			if turned[e.ID] {
				c.ans = append(c.ans, e.ID)
			}
		}
	}
}

// sharedID reports whether two of the calls hold entries of one id.
func sharedID(calls []*joined[[]Entry, []string]) bool {
	owner := map[string]int{}
	for i, c := range calls {
		for _, e := range c.req {
			if o, ok := owner[e.ID]; ok && o != i {
				return true
			}
			owner[e.ID] = i
		}
	}
	return false
}

// Cancel implements Index. Concurrent calls share one call of the cancel
// script (combiner).
func (r *Redis) Cancel(ctx context.Context, cs []Cancellation, ttl time.Duration) ([]Entry, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	return r.cancels.do(ctx, cancelCall{cs: cs, ttl: ttl})
}

// runCancels runs the cancel script once for each run of calls with one
// ttl (ttlRuns), and hands each call the entries its own cancellations
// removed: the script names the cancellation that removed each, and
// applies them in the calls' order, as one call after another would.
func (r *Redis) runCancels(ctx context.Context, calls []*joined[cancelCall, []Entry]) {
	ttlRuns(calls, func(c cancelCall) time.Duration { return c.ttl }, func(run []*joined[cancelCall, []Entry], ttl time.Duration) {
		var owner []int // cancellation index → call in run
		for ci, c := range run {
			for range c.req.cs {
				owner = append(owner, ci)
			}
		}
		args := r.ttlArgs(3+2*len(owner), ttl)
		for _, c := range run {
			for _, x := range c.req.cs {
				args = append(args, x.Key, millisArg(x.At))
			}
		}
		v, err := cancelScript.Run(ctx, r.c, r.keys, args...).Result()
		var a []string
		if err == nil {
			a, err = stringsReply("cancel", v) // index, id, record, …
			if err == nil && len(a)%3 != 0 {
				err = badReply("cancel", v)
			}
		}
		for i := 0; err == nil && i < len(a); i += 3 {
			at, convErr := strconv.Atoi(a[i])
			if convErr != nil || at < 0 || at >= len(owner) {
				err = badReply("cancel", v)
				break
			}
			e := Entry{ID: a[i+1]}
			if a[i+2] != "" {
				e.Record = []byte(a[i+2])
			}
			c := run[owner[at]]
			c.ans = append(c.ans, e)
		}
		if err != nil {
			for _, c := range run {
				c.ans, c.err = nil, err
			}
		}
	})
}

// Due implements Index.
func (r *Redis) Due(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	at := now.UnixMilli()
	v, err := dueScript.Run(ctx, r.c, r.keys, r.base, at, limit, at+lease.Milliseconds()).Result()
	if err != nil {
		return nil, err
	}
	return entriesReply("due", v)
}

// entriesReply reads Due's and Stale's replies: id, due, keys, record for
// each entry.
func entriesReply(op string, v any) ([]Entry, error) {
	a, ok := v.([]any)
	if !ok || len(a)%4 != 0 {
		return nil, badReply(op, v)
	}
	out := make([]Entry, 0, len(a)/4)
	for i := 0; i < len(a); i += 4 {
		e, err := entryReply(a[i], a[i+1], a[i+2], a[i+3])
		if err != nil {
			return nil, badReply(op, v)
		}
		out = append(out, e)
	}
	return out, nil
}

// Stale implements Index.
func (r *Redis) Stale(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	at := now.UnixMilli()
	v, err := staleScript.Run(ctx, r.c, r.keys, r.base, at, limit, at+lease.Milliseconds()).Result()
	if err != nil {
		return nil, err
	}
	return entriesReply("stale", v)
}

// Done implements Index. Concurrent calls share one call of the done
// script (combiner).
func (r *Redis) Done(ctx context.Context, ids []string, ttl time.Duration) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := r.dones.do(ctx, doneCall{ids: ids, ttl: ttl})
	return err
}

// runDones runs the done script once for each run of calls with one ttl
// (ttlRuns).
func (r *Redis) runDones(ctx context.Context, calls []*joined[doneCall, struct{}]) {
	ttlRuns(calls, func(d doneCall) time.Duration { return d.ttl }, func(run []*joined[doneCall, struct{}], ttl time.Duration) {
		n := 3
		for _, c := range run {
			n += len(c.req.ids)
		}
		args := r.ttlArgs(n, ttl)
		for _, c := range run {
			for _, id := range c.req.ids {
				args = append(args, id)
			}
		}
		err := doneScript.Run(ctx, r.c, r.keys, args...).Err()
		for _, c := range run {
			c.err = err
		}
	})
}

// ttlRuns calls run for each run of consecutive calls with one ttl (one
// run, from one scheduler), in the calls' order: a call never runs before
// one ahead of it with another ttl, which would take its entries.
func ttlRuns[Q, A any](calls []*joined[Q, A], ttl func(Q) time.Duration, run func([]*joined[Q, A], time.Duration)) {
	for len(calls) > 0 {
		t := ttl(calls[0].req)
		k := 1
		for k < len(calls) && ttl(calls[k].req) == t {
			k++
		}
		run(calls[:k], t)
		calls = calls[k:]
	}
}

// ttlArgs is the start of a done or cancel script's arguments, with room
// for n in all: the prefix, now and the marks' expiry, now + ttl.
func (r *Redis) ttlArgs(n int, ttl time.Duration) []any {
	now := r.now()
	return append(make([]any, 0, n), r.base, now, now+ttl.Milliseconds())
}

// Missing implements Index.
func (r *Redis) Missing(ctx context.Context, n int) ([]int, error) {
	if n <= 0 {
		return nil, nil
	}
	fields := make([]string, n)
	for p := range fields {
		fields[p] = strconv.Itoa(p)
	}
	v, err := r.c.HMGet(ctx, r.ready, fields...).Result()
	if err != nil {
		return nil, err
	}
	var out []int
	for p, x := range v {
		if x == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// MarkReady implements Index.
func (r *Redis) MarkReady(ctx context.Context, partition int) error {
	return r.c.HSet(ctx, r.ready, strconv.Itoa(partition), "1").Err()
}

// Lock implements Index.
func (r *Redis) Lock(ctx context.Context, partition int, owner string, ttl time.Duration) (bool, error) {
	ms, err := lockMillis(owner, ttl)
	if err != nil {
		return false, err
	}
	n, err := lockScript.Run(ctx, r.c, []string{r.lockKey(partition)}, owner, ms).Int64()
	return n == 1, err
}

// Unlock implements Index.
func (r *Redis) Unlock(ctx context.Context, partition int, owner string) error {
	return unlockScript.Run(ctx, r.c, []string{r.lockKey(partition)}, owner).Err()
}

func (r *Redis) lockKey(partition int) string { return r.base + "lock:" + strconv.Itoa(partition) }

// Pending implements Index.
func (r *Redis) Pending(ctx context.Context) (int64, error) {
	return pendingScript.Run(ctx, r.c, r.keys[:2]).Int64()
}

// Lookup implements Index.
func (r *Redis) Lookup(ctx context.Context, id string) (Entry, string, error) {
	keys := append(r.keys[:5:5], r.keys[6])
	v, err := lookupScript.Run(ctx, r.c, keys, id, r.now()).Result()
	if err != nil {
		return Entry{}, "", err
	}
	a, ok := v.([]any)
	if !ok || len(a) == 0 {
		return Entry{}, "", badReply("lookup", v)
	}
	state, _ := a[0].(string)
	switch {
	case state == "" && len(a) == 1:
		return Entry{}, "", nil
	case state == StateDone && len(a) == 1:
		return Entry{ID: id}, StateDone, nil
	case (state == StatePending || state == StateLeased) && len(a) == 4:
		e, err := entryReply(id, a[1], a[2], a[3])
		if err != nil {
			return Entry{}, "", badReply("lookup", v)
		}
		return e, state, nil
	}
	return Entry{}, "", badReply("lookup", v)
}

// Close implements Index. It does not close the client, which is the
// caller's.
func (r *Redis) Close() error { return nil }

// entryReply makes an Entry of a script's id, due ms, keys and record.
func entryReply(id, due, keys, rec any) (Entry, error) {
	var e Entry
	var ok bool
	if e.ID, ok = id.(string); !ok {
		return e, fmt.Errorf("id %T", id)
	}
	ms, ok := due.(int64)
	if !ok {
		return e, fmt.Errorf("due %T", due)
	}
	e.Due = time.UnixMilli(ms)
	ks, ok := keys.([]any)
	if !ok {
		return e, fmt.Errorf("keys %T", keys)
	}
	for _, k := range ks {
		s, ok := k.(string)
		if !ok {
			return e, fmt.Errorf("key %T", k)
		}
		e.Keys = append(e.Keys, s)
	}
	s, ok := rec.(string)
	if !ok {
		return e, fmt.Errorf("record %T", rec)
	}
	e.Record = []byte(s)
	return e, nil
}

// stringsReply reads a script's array of strings.
func stringsReply(op string, v any) ([]string, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, badReply(op, v)
	}
	var out []string
	for _, x := range a {
		s, ok := x.(string)
		if !ok {
			return nil, badReply(op, v)
		}
		out = append(out, s)
	}
	return out, nil
}

func badReply(op string, v any) error {
	return fmt.Errorf("schedule: %s: unexpected reply from Redis: %.200v", op, v)
}
