package receipts

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// DefaultPrefix is the Redis key prefix of the receipts.
const DefaultPrefix = "herald:receipt:"

// Key layout
//
// A receipt lives under its provider message id, because that is what every
// status callback names:
//
//	herald:receipt:pm:{<provider message id>}   hash
//	  n  notification id ("" until Accepted)
//	  c  channel
//	  p  provider
//	  s  status
//	  k  provider code
//	  t  time of the last change, Unix milliseconds from the caller's clock
//
// and the notification's latest provider message id under
//
//	herald:receipt:n:{<notification id>}        string
//
// Both expire TTL after they were first written. Each script and each
// command names exactly one key, so nothing here needs two keys in one slot
// and Redis Cluster routes every call by that key alone; the braces make the
// slot a function of the id only. The hot path, a status callback, is one
// script on one key; Accepted is a script and a SET (two keys, two slots,
// two commands, the receipt first so an index never points at nothing);
// Get is a GET and an HMGET.
//
// A receipt is keyed by provider message id, not notification id, so that
// a callback that beats Accepted (Twilio can post "sent" before its answer
// to the send reaches the worker) has a key to land on: Accepted then adds
// the notification id and keeps the status.

// fields are the hash fields in the order the scripts return them.
var fields = []any{"n", "c", "p", "s", "k", "t"}

// rankTable is Status.Rank as a Lua table, so the scripts order statuses
// exactly as Go does.
func rankTable() string {
	var b strings.Builder
	b.WriteString("{")
	for _, s := range Statuses {
		fmt.Fprintf(&b, "[%q]=%d,", string(s), s.Rank())
	}
	b.WriteString("}")
	return b.String()
}

// acceptScript: KEYS[1] receipt; ARGV notification id, channel, provider,
// now ms, ttl ms. Returns the hash's fields.
var acceptScript = redis.NewScript(`
local s = redis.call('HGET', KEYS[1], 's')
if not s or s == 'accepted' then
  redis.call('HSET', KEYS[1], 's', 'accepted', 'k', '', 't', ARGV[4])
end
redis.call('HSET', KEYS[1], 'n', ARGV[1], 'c', ARGV[2], 'p', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return redis.call('HMGET', KEYS[1], 'n', 'c', 'p', 's', 'k', 't')
`)

// recordScript: KEYS[1] receipt; ARGV status, code, now ms, ttl ms.
// Returns {changed (0|1), fields...}. A status moves only up the ranks; a
// receipt created here (before Accepted) gets the TTL.
var recordScript = redis.NewScript(`
local rank = ` + rankTable() + `
local want = rank[ARGV[1]]
if not want then
  return redis.error_reply('unknown status')
end
local s = redis.call('HGET', KEYS[1], 's')
local changed = 0
if not s or (rank[s] or 0) < want then
  redis.call('HSET', KEYS[1], 's', ARGV[1], 'k', ARGV[2], 't', ARGV[3])
  if not s then
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  end
  changed = 1
end
local v = redis.call('HMGET', KEYS[1], 'n', 'c', 'p', 's', 'k', 't')
table.insert(v, 1, changed)
return v
`)

// Redis is a Store on Redis (single, Sentinel or Cluster). The client stays
// the caller's.
type Redis struct {
	client redis.UniversalClient
	ttl    time.Duration
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on client keeping receipts for ttl, DefaultTTL
// when ttl <= 0.
func NewRedis(client redis.UniversalClient, ttl time.Duration) *Redis {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Redis{client: client, ttl: ttl}
}

// ReceiptKey is the Redis key of a provider message's receipt.
func ReceiptKey(providerMessageID string) string {
	return DefaultPrefix + "pm:{" + providerMessageID + "}"
}

// NotificationKey is the Redis key naming a notification's latest provider
// message id.
func NotificationKey(notificationID string) string {
	return DefaultPrefix + "n:{" + notificationID + "}"
}

// Accepted implements Store.
func (r *Redis) Accepted(ctx context.Context, rc Receipt) (Receipt, error) {
	if rc.NotificationID == "" || rc.ProviderMessageID == "" {
		return Receipt{}, invalid("accepted needs a notification id and a provider message id")
	}
	ttl := r.ttl.Milliseconds()
	v, err := acceptScript.Run(ctx, r.client, []string{ReceiptKey(rc.ProviderMessageID)},
		rc.NotificationID, string(rc.Channel), rc.Provider, rc.At.UnixMilli(), ttl).Slice()
	if err != nil {
		return Receipt{}, unavailable("accepted", err)
	}
	got, err := decode(rc.ProviderMessageID, v)
	if err != nil {
		return Receipt{}, err
	}
	if err := r.client.Set(ctx, NotificationKey(rc.NotificationID), rc.ProviderMessageID, r.ttl).Err(); err != nil {
		return Receipt{}, unavailable("accepted", err)
	}
	return got, nil
}

// Record implements Store.
func (r *Redis) Record(ctx context.Context, providerMessageID string, status Status, code string, at time.Time) (Receipt, bool, error) {
	if providerMessageID == "" || !status.Valid() {
		return Receipt{}, false, invalid("record needs a provider message id and a known status (got %q)", status)
	}
	v, err := recordScript.Run(ctx, r.client, []string{ReceiptKey(providerMessageID)},
		string(status), code, at.UnixMilli(), r.ttl.Milliseconds()).Slice()
	if err != nil {
		return Receipt{}, false, unavailable("record", err)
	}
	if len(v) != 1+len(fields) {
		return Receipt{}, false, unavailable("record", fmt.Errorf("script answered %d values", len(v)))
	}
	changed, _ := v[0].(int64)
	got, err := decode(providerMessageID, v[1:])
	return got, changed == 1, err
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, notificationID string) (Receipt, bool, error) {
	if notificationID == "" {
		return Receipt{}, false, invalid("empty notification id")
	}
	pmid, err := r.client.Get(ctx, NotificationKey(notificationID)).Result()
	if errors.Is(err, redis.Nil) {
		return Receipt{}, false, nil
	}
	if err != nil {
		return Receipt{}, false, unavailable("get", err)
	}
	return r.Lookup(ctx, pmid)
}

// Lookup implements Store.
func (r *Redis) Lookup(ctx context.Context, providerMessageID string) (Receipt, bool, error) {
	if providerMessageID == "" {
		return Receipt{}, false, invalid("empty provider message id")
	}
	v, err := r.client.HMGet(ctx, ReceiptKey(providerMessageID), "n", "c", "p", "s", "k", "t").Result()
	if err != nil {
		return Receipt{}, false, unavailable("lookup", err)
	}
	if len(v) < 4 || v[3] == nil {
		return Receipt{}, false, nil
	}
	got, err := decode(providerMessageID, v)
	return got, err == nil, err
}

// decode turns the six hash fields into a Receipt.
func decode(pmid string, v []any) (Receipt, error) {
	if len(v) != len(fields) {
		return Receipt{}, unavailable("decode", fmt.Errorf("%d values, want %d", len(v), len(fields)))
	}
	str := func(i int) string { s, _ := v[i].(string); return s }
	rc := Receipt{
		NotificationID:    str(0),
		Channel:           notification.Channel(str(1)),
		Provider:          str(2),
		ProviderMessageID: pmid,
		Status:            Status(str(3)),
		Code:              str(4),
	}
	if ms, err := strconv.ParseInt(str(5), 10, 64); err == nil {
		rc.At = time.UnixMilli(ms)
	}
	return describe(rc), nil
}

func unavailable(op string, err error) error {
	r := failure.ReasonUnavailable
	if errors.Is(err, context.DeadlineExceeded) {
		r = failure.ReasonTimeout
	}
	return failure.Retry(r, fmt.Errorf("receipts: %s: %w", op, err))
}
