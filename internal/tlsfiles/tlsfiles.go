// Package tlsfiles loads the PEM files a TLS client is configured with (a
// private CA bundle, a client certificate and key) into a tls.Config, for
// every connection herald makes to Kafka and Redis. Errors name the file,
// never its contents.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Apply adds to tc the CAs in caFile (instead of the system roots) and the
// client certificate in certFile and keyFile; an empty name is skipped, but
// a certificate needs both files.
func Apply(tc *tls.Config, caFile, certFile, keyFile string) error {
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("TLS CA file %s holds no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	if certFile == "" && keyFile == "" {
		return nil
	}
	if certFile == "" || keyFile == "" {
		return errors.New("TLS client certificate: both the certificate and the key file are needed")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("TLS client certificate %s / key %s: %w", certFile, keyFile, err)
	}
	tc.Certificates = []tls.Certificate{cert}
	return nil
}

// Refused reports whether err is a TLS handshake failing on certificates
// or protocol (an unknown CA, a wrong host name, a peer that does not speak
// TLS, an alert from the peer): configuration that no retry will fix, as
// opposed to a network outage.
func Refused(err error) bool {
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
		alert     tls.AlertError
	)
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &record) || errors.As(err, &alert)
}
