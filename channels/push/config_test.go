package push_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gymhq/herald/channels/push"
)

func TestConfigValidate(t *testing.T) {
	creds := []byte(`{"type":"service_account"}`)
	valid := push.Config{ProjectID: projectID, CredentialsJSON: creds}
	tests := []struct {
		name    string
		edit    func(*push.Config)
		wantErr string // substring naming the field; "" for valid
	}{
		{"minimal", func(*push.Config) {}, ""},
		{"defaults spelled out", func(c *push.Config) { c.Endpoint, c.Timeout = push.DefaultEndpoint, push.DefaultTimeout }, ""},
		{"credentials file", func(c *push.Config) { c.CredentialsJSON, c.CredentialsFile = nil, "/secrets/fcm.json" }, ""},
		{"token source only", func(c *push.Config) {
			c.CredentialsJSON, c.TokenSource = nil, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"})
		}, ""},
		{"token source overrides credentials", func(c *push.Config) {
			c.TokenSource = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"})
		}, ""},
		{"domain-scoped project", func(c *push.Config) { c.ProjectID = "example.com:gym-prod" }, ""},
		{"local fake", func(c *push.Config) { c.Endpoint = "http://127.0.0.1:9099/" }, ""},

		{"no project", func(c *push.Config) { c.ProjectID = "" }, "ProjectID"},
		{"project with capitals", func(c *push.Config) { c.ProjectID = "Herald-Dev" }, "ProjectID"},
		{"project too short", func(c *push.Config) { c.ProjectID = "gym" }, "ProjectID"},
		{"project with slash", func(c *push.Config) { c.ProjectID = "gym/../x" }, "ProjectID"},
		{"no credentials", func(c *push.Config) { c.CredentialsJSON = nil }, "CredentialsFile or CredentialsJSON"},
		{"both credentials", func(c *push.Config) { c.CredentialsFile = "/secrets/fcm.json" }, "CredentialsFile and CredentialsJSON"},
		{"negative timeout", func(c *push.Config) { c.Timeout = -time.Second }, "Timeout"},
		{"endpoint relative", func(c *push.Config) { c.Endpoint = "fcm.googleapis.com" }, "Endpoint"},
		{"endpoint with query", func(c *push.Config) { c.Endpoint = "https://fcm.googleapis.com?key=x" }, "Endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.wantErr)
			}
			if _, err := push.New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestNewCredentials(t *testing.T) {
	sa, err := serviceAccount()
	if err != nil {
		t.Fatal(err)
	}
	good, _ := sa.JSON("http://127.0.0.1:1/token")
	noTokenURI, _ := sa.JSON("")
	dir := t.TempDir()
	file := filepath.Join(dir, "sa.json")
	if err := os.WriteFile(file, good, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     push.Config
		wantErr string
	}{
		{"json", push.Config{CredentialsJSON: good}, ""},
		{"file", push.Config{CredentialsFile: file}, ""},
		{"no token_uri falls back to google", push.Config{CredentialsJSON: noTokenURI}, ""},
		{"missing file", push.Config{CredentialsFile: filepath.Join(dir, "nope.json")}, "CredentialsFile"},
		{"not json", push.Config{CredentialsJSON: []byte("hello")}, "CredentialsJSON"},
		{"user credentials", push.Config{CredentialsJSON: []byte(`{"type":"authorized_user","client_id":"x"}`)}, `"authorized_user"`},
		{"no email", push.Config{CredentialsJSON: []byte(`{"type":"service_account","private_key":"x"}`)}, "client_email"},
		{"no key", push.Config{CredentialsJSON: []byte(`{"type":"service_account","client_email":"a@b"}`)}, "private_key"},
		{"key not pem", push.Config{CredentialsJSON: []byte(`{"type":"service_account","client_email":"a@b","private_key":"MIIE..."}`)}, "private_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ProjectID = projectID
			s, err := push.New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, want an error mentioning %s", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error quotes the key: %v", err)
			}
		})
	}
}
