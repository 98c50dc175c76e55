package kafkarun

import "time"

// SetBatchBytes sets the bytes of one partition's batch in a produce
// request, for tests that split a call into several requests.
func SetBatchBytes(p *Producer, n int) { p.reqs.batchBytes = n }

// SetLeaderWait sets how long a grouped write keeps trying records whose
// partition's leader moved.
func SetLeaderWait(p *Producer, d time.Duration) { p.reqs.leaderWait = d }

// SetKeyHash replaces how c hashes records' keys for its busy-key queues,
// for tests that make keys collide.
func SetKeyHash(c *Consumer, f func([]byte) uint64) { c.keyHash = f }
