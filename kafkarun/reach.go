package kafkarun

import (
	"context"
	"errors"
	"strings"

	"github.com/segmentio/kafka-go"
)

// Reach dials the seed brokers in turn with the Connection's TLS and SASL
// settings and returns nil as soon as one accepts. If a broker refuses the
// settings it returns that at once (Refused reports true for it); if none
// can be reached it returns one error, on one line, with each broker's
// dial error (each names its address), which waiting may cure.
func (c *Connection) Reach(ctx context.Context, brokers []string) error {
	var msgs []string
	for _, b := range brokers {
		conn, err := c.Dialer.DialContext(ctx, "tcp", b)
		if err == nil {
			conn.Close()
			return nil
		}
		if refused(err) {
			return &refusedError{broker: b, err: err}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := err.Error()
		if !strings.Contains(msg, b) {
			msg = b + ": " + msg
		}
		msgs = append(msgs, msg)
	}
	return errors.New(strings.Join(msgs, "; "))
}

type refusedError struct {
	broker string
	err    error
}

func (e *refusedError) Error() string {
	return "kafkarun: broker " + e.broker + " refused the connection settings: " + e.err.Error()
}

func (e *refusedError) Unwrap() error { return e.err }

// Refused reports whether err, from Reach or EnsureTopics, is an answer
// that waiting will not change: the brokers refuse herald's credentials or
// certificate, or the cluster's ACLs or topic policy refuse what herald
// asks. Everything else a starting worker meets — a broker that cannot be
// dialled, no controller yet, fewer live brokers than the replication
// factor while a cluster boots, timeouts — is retried: it clears once the
// cluster is up, and exiting would only put the pod into CrashLoopBackOff.
func Refused(err error) bool {
	var re *refusedError
	if errors.As(err, &re) || refused(err) {
		return true
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		switch kerr {
		case kafka.TopicAuthorizationFailed, kafka.ClusterAuthorizationFailed, kafka.GroupAuthorizationFailed,
			kafka.PolicyViolation, kafka.InvalidTopic:
			return true
		}
	}
	return false
}
