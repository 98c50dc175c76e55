package unsubscribe_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/prefs/unsubscribe"
)

var (
	secret = []byte("an-unsubscribe-secret-of-32-bytes!!")
	now    = time.Date(2026, 11, 20, 18, 4, 0, 0, time.UTC)
)

func signer(t testing.TB, key []byte) *unsubscribe.Signer {
	t.Helper()
	s, err := unsubscribe.NewSigner(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	s := signer(t, secret)
	tok, err := s.Issue("mem_0001", "marketing", notification.Email, now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify(tok, now.Add(59*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := unsubscribe.Token{Person: "mem_0001", Category: "marketing", Channel: notification.Email, Expires: now.Add(unsubscribe.DefaultTTL)}
	if got != want {
		t.Errorf("Verify = %+v, want %+v", got, want)
	}
	if link := unsubscribe.Link("https://gw.example/herald/", tok); link != "https://gw.example/herald/v1/unsubscribe?token="+tok {
		t.Errorf("Link = %q", link)
	}
}

// TestRefused: a token another key signed, one with any byte changed, one
// cut short or extended, and one past its expiry are refused; the first
// ones without saying why.
func TestRefused(t *testing.T) {
	s := signer(t, secret)
	tok, err := s.Issue("mem_0001", "marketing", notification.Email, now)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := signer(t, []byte("another-secret-that-is-32-bytes-long")).Issue("mem_0001", "marketing", notification.Email, now)
	p64, m64, _ := strings.Cut(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(p64)
	swapped := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "mem_0001", "mem_0002", 1))) + "." + m64
	longer := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "marketing", "transactional", 1))) + "." + m64
	cases := map[string]string{
		"another key":        other,
		"another person":     swapped,
		"another category":   longer,
		"cut short":          tok[:len(tok)-2],
		"extended":           tok + "A",
		"no mac":             p64,
		"empty":              "",
		"padding":            tok + "=",
		"oversized":          strings.Repeat("A", unsubscribe.MaxTokenBytes+1),
		"mac of nothing":     "." + m64,
		"two dots":           p64 + "." + m64 + "." + m64,
		"standard alphabet":  strings.NewReplacer("-", "+", "_", "/").Replace(tok),
		"whitespace":         " " + tok,
		"unsigned lookalike": base64.RawURLEncoding.EncodeToString([]byte("mem_0001|marketing|email|99999999999")) + ".AAAA",
	}
	for i := range tok {
		if tok[i] == '.' {
			continue
		}
		b := []byte(tok)
		b[i] ^= 1
		if b[i] >= 0x80 || b[i] < 0x20 {
			continue
		}
		cases["byte "+string(rune('0'+i%10))+"-"+string(tok[i])] = string(b)
	}
	for name, bad := range cases {
		if bad == tok {
			continue
		}
		if _, err := s.Verify(bad, now); !errors.Is(err, unsubscribe.ErrInvalid) {
			t.Errorf("%s: Verify error %v, want ErrInvalid", name, err)
		}
	}
	for _, at := range []time.Time{now.Add(unsubscribe.DefaultTTL), now.Add(unsubscribe.DefaultTTL + time.Hour)} {
		if _, err := s.Verify(tok, at); !errors.Is(err, unsubscribe.ErrExpired) {
			t.Errorf("at expiry + %s: Verify error %v, want ErrExpired", at.Sub(now.Add(unsubscribe.DefaultTTL)), err)
		}
	}
}

func TestSignerRefusesBadInput(t *testing.T) {
	if _, err := unsubscribe.NewSigner(secret[:31], 0); err == nil {
		t.Error("a 31-byte secret was accepted")
	}
	if _, err := unsubscribe.NewSigner(secret, -time.Hour); err == nil {
		t.Error("a negative lifetime was accepted")
	}
	s := signer(t, secret)
	for _, tt := range []unsubscribe.Token{
		{Person: "", Category: "marketing", Channel: "email", Expires: now},
		{Person: "mem|1", Category: "marketing", Channel: "email", Expires: now},
		{Person: "mem_1", Category: "Marketing", Channel: "email", Expires: now},
		{Person: "mem_1", Category: "marketing", Channel: "e|mail", Expires: now},
		{Person: "mem_1", Category: "marketing", Channel: "email"},
	} {
		if tok, err := s.Sign(tt); err == nil {
			t.Errorf("Sign(%+v) = %q, want an error", tt, tok)
		}
	}
}

// FuzzVerify: no input panics, and whatever verifies is exactly what the
// signer makes of the token it returns (nothing but the signed form
// verifies).
func FuzzVerify(f *testing.F) {
	s := signer(f, secret)
	tok, _ := s.Issue("mem_0001", "marketing", notification.Email, now)
	for _, seed := range []string{tok, "", ".", "a.b", tok + "x", strings.Repeat("A.", 600)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := s.Verify(in, now)
		if err != nil {
			if !errors.Is(err, unsubscribe.ErrInvalid) && !errors.Is(err, unsubscribe.ErrExpired) {
				t.Fatalf("Verify(%q): unclassified error %v", in, err)
			}
			return
		}
		again, err := s.Sign(got)
		if err != nil || again != in {
			t.Fatalf("Verify(%q) = %+v, which signs as %q, %v", in, got, again, err)
		}
	})
}
