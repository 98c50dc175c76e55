package kafkarun

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/gymhq/herald/internal/tlsfiles"
)

// SASL mechanisms herald speaks. Managed clusters (Confluent Cloud, MSK,
// Aiven, Redpanda Cloud) offer at least one of them; the SCRAM ones never
// send the password, PLAIN must only be used over TLS.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Security is how herald authenticates to the brokers and protects the
// connection. The zero value is plaintext without authentication, for a
// cluster on a private network or the in-process one.
//
// Every Kafka connection herald makes — the consumer group coordinator, the
// partition readers, the producer and the topic-creation client — uses the
// same settings: Build turns them into the Dialer and Transport kafka-go
// wants for each of those.
type Security struct {
	// SASLMechanism is "" (no SASL), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	SASLMechanism      string
	Username, Password string

	// TLS turns TLS on. With no CAFile the system roots verify the brokers.
	TLS bool
	// CAFile is a PEM bundle of the CAs that sign the brokers' certificates
	// (a private CA), used instead of the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key for mutual
	// TLS; both or neither.
	CertFile, KeyFile string
	// ServerName is the name checked against the brokers' certificates
	// when it is not the host in the broker address (brokers behind a load
	// balancer or reached by IP).
	ServerName string

	// ClientID names this process to the brokers (quotas, request logs).
	ClientID string
}

// Validate reports the first inconsistency, naming the field. It reads no
// files; Build does.
func (s *Security) Validate() error {
	switch s.SASLMechanism {
	case "":
		if s.Username != "" || s.Password != "" {
			return errors.New("kafkarun: a SASL user name or password is set but no SASL mechanism")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.Username == "" || s.Password == "" {
			return fmt.Errorf("kafkarun: SASL %s needs a user name and a password", s.SASLMechanism)
		}
	default:
		return fmt.Errorf("kafkarun: SASL mechanism %q is not one of %s, %s, %s", s.SASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return errors.New("kafkarun: a TLS client certificate needs both the certificate and the key file")
	}
	if !s.TLS && (s.CAFile != "" || s.CertFile != "" || s.ServerName != "") {
		return errors.New("kafkarun: TLS files or a server name are set but TLS is off")
	}
	return nil
}

// Connection is what kafka-go needs to reach the brokers with Security: a
// Dialer for the consumer group and readers, a Transport for the producer
// and the admin client. Both are safe to share.
type Connection struct {
	Dialer    *kafka.Dialer
	Transport *kafka.Transport
}

// Build validates s, loads its files and returns the Connection. Errors
// name the file or setting, never a secret.
func (s *Security) Build() (*Connection, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	mech, err := s.mechanism()
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if s.TLS {
		if tc, err = s.tlsConfig(); err != nil {
			return nil, err
		}
	}
	return &Connection{
		Dialer: &kafka.Dialer{
			ClientID: s.ClientID, Timeout: 10 * time.Second, DualStack: true,
			TLS: tc, SASLMechanism: mech,
		},
		Transport: &kafka.Transport{
			ClientID: s.ClientID, DialTimeout: 10 * time.Second,
			TLS: tc, SASL: mech,
		},
	}, nil
}

func (s *Security) mechanism() (sasl.Mechanism, error) {
	switch s.SASLMechanism {
	case SASLPlain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case SASLScramSHA256, SASLScramSHA512:
		algo := scram.SHA256
		if s.SASLMechanism == SASLScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.Username, s.Password)
		if err != nil {
			// The scram package fails only on user names or passwords
			// that SASLprep rejects; do not echo them.
			return nil, fmt.Errorf("kafkarun: SASL %s: the user name or password has characters SASLprep rejects", s.SASLMechanism)
		}
		return m, nil
	}
	return nil, nil
}

func (s *Security) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if err := tlsfiles.Apply(tc, s.CAFile, s.CertFile, s.KeyFile); err != nil {
		return nil, fmt.Errorf("kafkarun: %w", err)
	}
	return tc, nil
}

// refused reports whether err is a broker rejecting herald's TLS or SASL
// settings rather than a network failure.
func refused(err error) bool {
	var kerr kafka.Error
	switch {
	case tlsfiles.Refused(err):
		return true
	case errors.As(err, &kerr):
		switch kerr {
		case kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism, kafka.IllegalSASLState:
			return true
		}
	}
	return false
}
