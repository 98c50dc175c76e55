// Package chaos holds herald's multi-process chaos test: several real
// `herald run --role all` processes on one Kafka cluster and one Redis,
// killed with SIGKILL and SIGTERM and restarted while events stream in. It
// proves that nothing is lost and measures the duplicates the idempotency
// keys let through (docs/contracts.md §3's admitted window) against the duplicates
// without them. TestChaosBurst is a crash loop: one of three processes
// SIGKILLed every 6 s for a minute, after which every group must re-form
// and everything arrive within a bound; it reports the time to recover.
// The broker runs in a process of its own (broker_test.go).
//
// The test is behind the `chaos` build tag because it builds the binary,
// runs for about three and a half minutes and wants the machine to itself:
// run it with `make chaos` (which `make test` runs last).
package chaos
