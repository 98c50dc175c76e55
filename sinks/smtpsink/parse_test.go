package smtpsink

import (
	"strings"
	"testing"
)

func FuzzParseMessage(f *testing.F) {
	f.Add([]byte("Subject: hi\r\n\r\nbody\r\n"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=C3=A9\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Disposition: attachment; filename=\"a.ics\"\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := parseMessage(raw)
		if err == nil && m == nil {
			t.Fatal("nil message without an error")
		}
	})
}

func TestParseMessageLimitsNesting(t *testing.T) {
	var b strings.Builder
	for i := range maxDepth + 2 {
		b.WriteString("Content-Type: multipart/mixed; boundary=b" + string(rune('a'+i)) + "\r\n\r\n--b" + string(rune('a'+i)) + "\r\n")
	}
	if _, err := parseMessage([]byte(b.String())); err == nil {
		t.Error("parsed a message nested deeper than maxDepth")
	}
}
