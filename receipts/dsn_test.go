package receipts_test

import (
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/receipts"
)

func TestParseDSN(t *testing.T) {
	f, err := os.Open("testdata/postfix-bounce.eml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := receipts.ParseDSN(f)
	if err != nil {
		t.Fatal(err)
	}
	if d.OriginalMessageID != "<ntf_0123456789abcdef@herald.example.com>" || d.ReportingMTA != "mx.example.com" {
		t.Errorf("DSN %+v", d)
	}
	want := []struct {
		to, action, status string
		receipt            receipts.Status
		suppressAs         failure.Reason
	}{
		{"nobody@example.org", "failed", "5.1.1", receipts.StatusBounced, failure.ReasonInvalidAddress},
		{"full@example.org", "failed", "5.2.2", receipts.StatusBounced, ""},
		{"slow@example.org", "delayed", "4.4.1", "", ""},
	}
	if len(d.Recipients) != len(want) {
		t.Fatalf("recipients %+v", d.Recipients)
	}
	for i, w := range want {
		r := d.Recipients[i]
		s, _ := r.Receipt()
		if r.FinalRecipient != w.to || r.Action != w.action || r.Status != w.status || s != w.receipt || r.SuppressReason() != w.suppressAs {
			t.Errorf("recipient %d: %+v (receipt %q, suppress %q), want %+v", i, r, s, r.SuppressReason(), w)
		}
	}
	if !strings.HasPrefix(d.Recipients[0].DiagnosticCode, "550 5.1.1 <nobody@example.org>: Recipient address") {
		t.Errorf("Diagnostic-Code %q", d.Recipients[0].DiagnosticCode)
	}
}

// TestParseDSNBase64: a delivery-status part sent base64-encoded.
func TestParseDSNBase64(t *testing.T) {
	status := "Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; a@example.org\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
	msg := "Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte(status)) + "\r\n--B--\r\n"
	d, err := receipts.ParseDSN(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := d.Recipients[0].Receipt(); !ok || s != receipts.StatusDelivered || d.OriginalMessageID != "" {
		t.Errorf("%+v", d)
	}
}

func TestParseDSNRefuses(t *testing.T) {
	for name, msg := range map[string]string{
		"plain mail":          "Content-Type: text/plain\r\n\r\nhello\r\n",
		"no status part":      "Content-Type: multipart/report; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--\r\n",
		"no recipients":       "Content-Type: multipart/report; boundary=B\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n--B--\r\n",
		"not a message":       "",
		"multipart no bounds": "Content-Type: multipart/report\r\n\r\nx",
	} {
		if _, err := receipts.ParseDSN(strings.NewReader(msg)); !errors.Is(err, receipts.ErrNotDSN) || failure.ClassOf(err) != failure.Permanent {
			t.Errorf("%s: %v, want a permanent ErrNotDSN", name, err)
		}
	}
}

// FuzzParseDSN: any bytes parse or fail with an error, without a panic;
// a parsed report has recipients.
func FuzzParseDSN(f *testing.F) {
	if b, err := os.ReadFile("testdata/postfix-bounce.eml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("Content-Type: multipart/report; boundary=B\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--B--\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := receipts.ParseDSN(strings.NewReader(string(b)))
		if err == nil && len(d.Recipients) == 0 {
			t.Fatal("a DSN without recipients parsed")
		}
	})
}
