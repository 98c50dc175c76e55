package address

import (
	"fmt"
	"net/mail"
	"strings"
	"testing"
)

// emailRef is email as it was before plainEmail: net/mail decides every
// address. TestPlainEmailMatchesNetMail and FuzzPlainEmail hold email to it.
func emailRef(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > MaxEmail:
		return fmt.Sprintf("is longer than %d bytes", MaxEmail)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "is not a bare email address (local@domain, no name or comment)"
	}
	return ""
}

// samePlainEmail fails unless email and emailRef agree on s, and
// plainEmail accepts only what net/mail parses back to s.
func samePlainEmail(t *testing.T, s string) {
	t.Helper()
	if got, want := email(s), emailRef(s); got != want {
		t.Fatalf("email(%q) = %q, net/mail says %q", s, got, want)
	}
	if plainEmail(s) {
		if a, err := mail.ParseAddress(s); err != nil || a.Name != "" || a.Address != s {
			t.Fatalf("plainEmail(%q) but net/mail gives %+v, %v", s, a, err)
		}
	}
}

func TestPlainEmailMatchesNetMail(t *testing.T) {
	specials := `()<>[]:;@\,". ` + "\t\r\n\x00\x7f\x80é"
	for _, s := range []string{
		"a@b", "a@b.cc", "member.one+tag@gym.example", "o'brien@x.io", "!#$%&'*+-/=?^_`{|}~@x",
		".a@b", "a.@b", "a..b@c", "a@.b", "a@b.", "a@b..c", "@b", "a@", "a@b@c", "a", "",
		`"a b"@c`, "a@[127.0.0.1]", " a@b", "a@b ", "a@b (c)", "A <a@b>", "a@b,c@d",
		strings.Repeat("a", 250) + "@b.cc", "é@b", "a@é", "a\xff@b",
	} {
		samePlainEmail(t, s)
	}
	for _, c := range specials {
		for _, f := range []string{"%c@b.cc", "a%c@b.cc", "a@b%c.cc", "a@b.cc%c", "a%[1]c%[1]c@b.cc"} {
			samePlainEmail(t, fmt.Sprintf(f, c))
		}
	}
}

func FuzzPlainEmail(f *testing.F) {
	for _, s := range []string{"a@b.cc", "a..b@c", "A <a@b>", `"x"@y`, "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(samePlainEmail)
}
