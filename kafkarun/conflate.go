package kafkarun

import "github.com/gymhq/herald/queue"

// conflate drops from msgs, one partition's fetched records in offset
// order, each record that the next later kept record of its key
// supersedes, and returns the others in their order and how many it
// dropped. Records without a key are all kept.
//
// Dropping a record before it is dispatched is safe for the commit: the
// partition's watermark never sees its offset, so it is a gap like a
// compacted record's, passed over only once a later record is done. The
// record that superseded it is later still, so the commit point cannot
// pass the dropped one before the record that stands for it has a durable
// outcome, and a crash before then fetches both again.
func conflate(msgs []*queue.Message, supersedes func(earlier, later *queue.Message) bool) ([]*queue.Message, int) {
	if len(msgs) < 2 {
		return msgs, 0
	}
	// kept: per key, the earliest record kept so far in the backward scan,
	// that is the next later kept record of that key.
	var kept map[string]*queue.Message
	dropped := 0
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if len(m.Key) == 0 {
			continue
		}
		if kept == nil {
			kept = make(map[string]*queue.Message, min(len(msgs), 1024))
		}
		if later, ok := kept[string(m.Key)]; ok && supersedes(m, later) {
			msgs[i] = nil
			dropped++
			continue
		}
		kept[string(m.Key)] = m
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
