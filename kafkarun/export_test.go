package kafkarun

// SetBatchBytes sets the bytes of one partition's batch in a produce
// request, for tests that split a call into several requests.
func SetBatchBytes(p *Producer, n int) { p.reqs.batchBytes = n }
