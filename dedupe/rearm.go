package dedupe

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Rearmer is implemented by stores that can make a permanently failed
// notification claimable again. It exists for `herald dlq replay`: a
// notification that failed permanently has its key in state failed, which
// every later copy obeys, so replaying it would otherwise be acknowledged as
// a duplicate and never sent. Only a failed key is reset: a sent key stays
// sent, so replaying the same DLQ record twice still delivers once, and a
// key in flight is left to its holder.
type Rearmer interface {
	// Rearm deletes id's key if, and only if, it is in state failed, and
	// reports whether it did. Errors are classified like the Store's.
	Rearm(ctx context.Context, id string) (bool, error)
}

var (
	_ Rearmer = (*Redis)(nil)
	_ Rearmer = (*Memory)(nil)
)

// rearmScript: KEYS[1] key. Returns 1 when a failed key was deleted.
var rearmScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 's') == 'failed' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// Rearm implements Rearmer.
func (r *Redis) Rearm(ctx context.Context, id string) (bool, error) {
	if err := checkID("rearm", id); err != nil {
		return false, err
	}
	v, err := r.do(ctx, "rearm", id, rearmScript)
	if err != nil {
		return false, err
	}
	n, _ := v.(int64)
	return n == 1, nil
}

// Rearm implements Rearmer.
func (m *Memory) Rearm(ctx context.Context, id string) (bool, error) {
	if err := checkID("rearm", id); err != nil {
		return false, err
	}
	now, unlock, err := m.lock(ctx, "rearm", id)
	if err != nil {
		return false, err
	}
	defer unlock()
	if e, ok := m.get(id, now); ok && e.state == StateFailed {
		delete(m.keys, id)
		return true, nil
	}
	return false, nil
}
