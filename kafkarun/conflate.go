package kafkarun

import "github.com/gymhq/herald/queue"

// Versioned reads what conflation compares of a record
// (ConsumerConfig.Conflate): the scope its version is compared in, and
// its version; ok is false for a record it cannot read.
type Versioned func(m *queue.Message) (scope string, version int64, ok bool)

// conflate drops from msgs, one partition's fetched records in offset
// order, each record superseded by the next later kept record of its key:
// both read, in the same scope, the later with a higher version. It
// returns the others in their order and how many it dropped. Records
// without a key, or that read does not read, are all kept. read is called
// only for records of a key that appears more than once, at most once per
// record.
//
// Dropping a record before it is dispatched is safe for the commit: the
// partition's watermark never sees its offset, so it is a gap like a
// compacted record's. The commit point may reach the record that stands
// for it (the watermark's next offset once nothing before it is pending)
// but not pass it before it has a durable outcome, so a crash before then
// fetches that record again, which stands for the dropped one as before.
func conflate(msgs []*queue.Message, read Versioned) ([]*queue.Message, int) {
	if len(msgs) < 2 {
		return msgs, 0
	}
	// kept: per key, the earliest record kept so far in the backward scan,
	// that is the next later kept record of that key, read when needed.
	type standing struct {
		m       *queue.Message
		read    bool
		scope   string
		version int64
		ok      bool
	}
	var kept map[string]standing
	dropped := 0
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if len(m.Key) == 0 {
			continue
		}
		if kept == nil {
			kept = make(map[string]standing, min(len(msgs), 1024))
		}
		later, found := kept[string(m.Key)]
		if !found {
			kept[string(m.Key)] = standing{m: m}
			continue
		}
		if !later.read {
			later.scope, later.version, later.ok = read(later.m)
			later.read = true
		}
		scope, version, ok := read(m)
		if ok && later.ok && scope == later.scope && version < later.version {
			msgs[i] = nil
			dropped++
			kept[string(m.Key)] = later // read now, if it was not
			continue
		}
		kept[string(m.Key)] = standing{m: m, read: true, scope: scope, version: version, ok: ok}
	}
	if dropped == 0 {
		return msgs, 0
	}
	out := msgs[:0]
	for _, m := range msgs {
		if m != nil {
			out = append(out, m)
		}
	}
	clear(msgs[len(out):])
	return out, dropped
}
