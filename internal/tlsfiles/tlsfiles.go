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
