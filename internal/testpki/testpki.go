// Package testpki makes a throwaway certificate authority for TLS tests:
// a CA, a server certificate for chosen names, and a client certificate,
// written as PEM files the way an operator would mount them.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is one CA with a server and a client certificate.
type PKI struct {
	// CAFile is the CA certificate, PEM.
	CAFile string
	// ServerCertFile and ServerKeyFile are the server's pair, PEM.
	ServerCertFile, ServerKeyFile string
	// CertFile and KeyFile are the client's pair, PEM.
	CertFile, KeyFile string
	// Server is a server-side config with the server certificate.
	Server *tls.Config
	// Pool holds the CA.
	Pool *x509.CertPool
}

// New makes a PKI in a temporary directory of tb. The server certificate
// is valid for names, each a DNS name or an IP address.
func New(tb testing.TB, names ...string) *PKI {
	tb.Helper()
	dir := tb.TempDir()
	must := func(err error) {
		if err != nil {
			tb.Fatalf("testpki: %v", err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herald test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	ca, err := x509.ParseCertificate(caDER)
	must(err)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, names []string) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		for _, n := range names {
			if ip := net.ParseIP(n); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, n)
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		must(err)
		kb, err := x509.MarshalECPrivateKey(key)
		must(err)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	}
	write := func(name string, b []byte) string {
		f := filepath.Join(dir, name)
		must(os.WriteFile(f, b, 0o600))
		return f
	}
	p := &PKI{Pool: x509.NewCertPool()}
	p.Pool.AddCert(ca)
	p.CAFile = write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	srvCert, srvKey := issue(2, "server", x509.ExtKeyUsageServerAuth, names)
	p.ServerCertFile, p.ServerKeyFile = write("server.pem", srvCert), write("server-key.pem", srvKey)
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	must(err)
	p.Server = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	cliCert, cliKey := issue(3, "herald", x509.ExtKeyUsageClientAuth, nil)
	p.CertFile, p.KeyFile = write("client.pem", cliCert), write("client-key.pem", cliKey)
	return p
}

// MutualServer is Server requiring a client certificate signed by the CA.
func (p *PKI) MutualServer() *tls.Config {
	c := p.Server.Clone()
	c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, p.Pool
	return c
}
