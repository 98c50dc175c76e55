package fcmfake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// The identity ServiceAccountJSON writes into its files.
const (
	DevProjectID   = "herald-dev"
	DevClientEmail = "herald-dev@herald-dev.iam.gserviceaccount.com"
)

// ServiceAccount is a generated Google service account: an RSA key and the
// identity that goes with it. Generating the key is the slow part, so tests
// make one and write it out for each fake's token URI with JSON.
type ServiceAccount struct {
	Key         *rsa.PrivateKey
	KeyID       string
	ClientEmail string
	ProjectID   string
}

// NewServiceAccount generates a 2048-bit RSA key for DevClientEmail in
// DevProjectID.
func NewServiceAccount() (*ServiceAccount, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &ServiceAccount{Key: key, KeyID: randomHex(20), ClientEmail: DevClientEmail, ProjectID: DevProjectID}, nil
}

// serviceAccountFile is the JSON key file Google's console hands out.
type serviceAccountFile struct {
	Type                    string `json:"type"`
	ProjectID               string `json:"project_id"`
	PrivateKeyID            string `json:"private_key_id"`
	PrivateKey              string `json:"private_key"`
	ClientEmail             string `json:"client_email"`
	ClientID                string `json:"client_id"`
	AuthURI                 string `json:"auth_uri"`
	TokenURI                string `json:"token_uri"`
	AuthProviderX509CertURL string `json:"auth_provider_x509_cert_url"`
	ClientX509CertURL       string `json:"client_x509_cert_url"`
	UniverseDomain          string `json:"universe_domain"`
}

// JSON writes sa as a service-account key file whose token_uri is tokenURI,
// with the private key as PKCS #8 PEM, as Google issues them.
func (sa *ServiceAccount) JSON(tokenURI string) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(sa.Key)
	if err != nil {
		return nil, err
	}
	clientID, err := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(10), big.NewInt(21), nil))
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(serviceAccountFile{
		Type:                    "service_account",
		ProjectID:               sa.ProjectID,
		PrivateKeyID:            sa.KeyID,
		PrivateKey:              string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		ClientEmail:             sa.ClientEmail,
		ClientID:                clientID.String(),
		AuthURI:                 "https://accounts.google.com/o/oauth2/auth",
		TokenURI:                tokenURI,
		AuthProviderX509CertURL: "https://www.googleapis.com/oauth2/v1/certs",
		ClientX509CertURL:       "https://www.googleapis.com/robot/v1/metadata/x509/" + sa.ClientEmail,
		UniverseDomain:          "googleapis.com",
	}, "", "  ")
}

// ServiceAccountJSON generates a new key and returns a service-account JSON
// key file (type, project_id, private_key_id, private_key, client_email,
// token_uri, …) pointing at tokenURI — normally a Fake's server URL plus
// TokenPath. Pass it to Fake.TrustServiceAccount so the fake accepts its
// assertions.
func ServiceAccountJSON(tokenURI string) ([]byte, error) {
	sa, err := NewServiceAccount()
	if err != nil {
		return nil, err
	}
	return sa.JSON(tokenURI)
}

// trusted is what the token endpoint knows of a service account.
type trusted struct {
	key      *rsa.PublicKey
	keyID    string
	tokenURI string
}

func parseServiceAccount(b []byte) (string, trusted, error) {
	var f serviceAccountFile
	if err := json.Unmarshal(b, &f); err != nil {
		return "", trusted{}, err
	}
	if f.Type != "service_account" || f.ClientEmail == "" || f.TokenURI == "" {
		return "", trusted{}, errors.New("not a service account key file with client_email and token_uri")
	}
	block, _ := pem.Decode([]byte(f.PrivateKey))
	if block == nil {
		return "", trusted{}, errors.New("private_key is not PEM")
	}
	var key any
	var err error
	if key, err = x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			return "", trusted{}, fmt.Errorf("private_key: %w", err)
		}
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return "", trusted{}, fmt.Errorf("private_key is %T, not RSA", key)
	}
	return f.ClientEmail, trusted{key: &rk.PublicKey, keyID: f.PrivateKeyID, tokenURI: f.TokenURI}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
