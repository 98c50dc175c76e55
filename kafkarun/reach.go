package kafkarun

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

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

// LayoutRefused reports whether creating topics failed because the cluster
// cannot place them as asked (a replication factor above its live brokers,
// a bad partition count): while a cluster starts, transient; if it lasts,
// the settings are wrong.
func LayoutRefused(err error) bool {
	return errors.Is(err, kafka.InvalidReplicationFactor) || errors.Is(err, kafka.InvalidPartitionNumber)
}

// Unanswered reports whether a broker took the connection and answered no
// request, which is usually a listener expecting TLS or SASL.
func Unanswered(err error) bool {
	return errors.Is(err, kafka.BrokerNotAvailable) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// PlainConnection reaches brokers without TLS or SASL, giving up on a
// dial after timeout: what a one-shot command uses when it has no
// Security of its own.
func PlainConnection(timeout time.Duration) *Connection {
	return &Connection{Dialer: &kafka.Dialer{Timeout: timeout, DualStack: true}}
}
