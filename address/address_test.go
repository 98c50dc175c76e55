package address_test

import (
	"strings"
	"testing"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		ch   notification.Channel
		to   string
		want string // "" for accepted, else a part of the message
	}{
		{notification.SMS, "+447700900123", ""},
		{notification.SMS, "+12345678", ""},
		{notification.SMS, "555-1234", "is not E.164"},
		{notification.SMS, "07700900123", "is not E.164"},
		{notification.SMS, "+0447700900123", "is not E.164"},
		{notification.SMS, "+44 7700 900123", "is not E.164"},
		{notification.SMS, "+1234567890123456", "is not E.164"},
		{notification.SMS, "+123456", "is not E.164"},
		{notification.SMS, "", "is not E.164"},
		{notification.Email, "oliver.bennett@example.com", ""},
		{notification.Email, "o'brien+gym@example.co.uk", ""},
		{notification.Email, "oliver.bennett@", "is not a bare email address"},
		{notification.Email, "Oliver <oliver@example.com>", "is not a bare email address"},
		{notification.Email, "<oliver@example.com>", "is not a bare email address"},
		{notification.Email, "oliver@example.com (home)", "is not a bare email address"},
		{notification.Email, "a@b.c, d@e.f", "is not a bare email address"},
		{notification.Email, "olivér@example.com\r\nBcc: x@y.z", "is not a bare email address"},
		{notification.Email, strings.Repeat("a", 250) + "@b.cc", "longer than 254"},
		{notification.Email, "", "is empty"},
		{notification.Push, "fGx3Yk2QRd6Wq8pLz0vN1m:APA91bH7sK3x-_", ""},
		{notification.Push, "abc def", "not printable ASCII"},
		{notification.Push, "abc\u202edef", "not printable ASCII"},
		{notification.Push, "tok\x00", "not printable ASCII"},
		{notification.Push, strings.Repeat("a", 4097), "longer than 4096"},
		{notification.Push, "", "is empty"},
		{"fax", "+447700900123", "no address rules"},
	}
	for _, tt := range tests {
		err := address.Check(tt.ch, tt.to)
		if tt.want == "" {
			if err != nil {
				t.Errorf("Check(%s, %q) = %v, want nil", tt.ch, tt.to, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check(%s, %q) = %v, want an error containing %q", tt.ch, tt.to, err, tt.want)
			continue
		}
		if failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != failure.ReasonInvalidAddress {
			t.Errorf("Check(%s, %q) = %v, want permanent invalid_address", tt.ch, tt.to, err)
		}
		if tt.to != "" && strings.Contains(err.Error(), tt.to) {
			t.Errorf("Check(%s, %q) quotes the address: %v", tt.ch, tt.to, err)
		}
	}
}

func TestSMSPolicy(t *testing.T) {
	def := address.DefaultSMSPolicy()
	gbIE := &address.SMSPolicy{Allowed: []string{"+44", "+353"}, Denied: []string{"+449"}}
	tests := []struct {
		p      *address.SMSPolicy
		phone  string
		denied string // "" when permitted, else a part of the message
	}{
		{def, "+447700900123", ""},
		{def, "+15005550006", ""},
		{def, "+19005550100", "denied range +1900"},
		{def, "+19765550100", "denied range +1976"},
		{def, "+449091234567", "denied range +449"},
		{def, "+4991234567", ""}, // Germany +49 91…, not +49900
		{def, "+49900123456", "denied range +49900"},
		{def, "+8816212345678", "denied range +881"},
		{def, "+979123456789", "denied range +979"},
		{gbIE, "+447700900123", ""},
		{gbIE, "+353851234567", ""},
		{gbIE, "+15005550006", "not in an allowed country"},
		{gbIE, "+449091234567", "denied range +449"},
		{nil, "+19005550100", ""},
		{&address.SMSPolicy{}, "+19005550100", ""},
	}
	for _, tt := range tests {
		err := tt.p.Permit(tt.phone)
		if tt.denied == "" {
			if err != nil {
				t.Errorf("Permit(%s) = %v, want nil", tt.phone, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.denied) {
			t.Errorf("Permit(%s) = %v, want an error containing %q", tt.phone, err, tt.denied)
			continue
		}
		if failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != failure.ReasonDestinationDenied {
			t.Errorf("Permit(%s) = %v, want permanent destination_denied", tt.phone, err)
		}
		if strings.Contains(err.Error(), tt.phone) {
			t.Errorf("Permit(%s) quotes the number: %v", tt.phone, err)
		}
	}
	for _, p := range address.DefaultDeniedPrefixes {
		if err := address.CheckPrefix(p); err != nil {
			t.Errorf("default denied prefix: %v", err)
		}
	}
	if err := def.Deliverable(notification.SMS, "555-1234"); failure.ReasonOf(err) != failure.ReasonInvalidAddress {
		t.Errorf("Deliverable(sms, 555-1234) = %v, want invalid_address before any policy", err)
	}
	if err := def.Deliverable(notification.Email, "a@b.cc"); err != nil {
		t.Errorf("Deliverable(email) = %v; the SMS policy must not apply to email", err)
	}
}

// Check takes addresses straight from producers: it must not panic, and
// its message must never depend on the address — it is one of a few fixed
// texts, so it cannot leak any of it.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"+447700900123", "555-1234", "a@b.cc", "Oliver <o@e.com>", "tok en", "\u202e"} {
		f.Add(s)
	}
	fixed := map[string]bool{}
	for _, ch := range notification.Known() {
		for _, bad := range []string{"", "x y", strings.Repeat("a", 5000)} {
			if err := address.Check(ch, bad); err != nil {
				fixed[err.Error()] = true
			}
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, ch := range notification.Known() {
			err := address.Check(ch, s)
			if err != nil && !fixed[err.Error()] {
				t.Fatalf("Check(%s, %q) = %v, not one of the fixed messages", ch, s, err)
			}
			if ch == notification.SMS && err == nil {
				_ = address.DefaultSMSPolicy().Permit(s)
			}
		}
	})
}

// MaskPhone keeps the country-code prefix and the last two digits, stars
// in between, one star per digit hidden; too short to mask is "***".
func TestMaskPhone(t *testing.T) {
	for in, want := range map[string]string{
		"+447700900123": "+44********23",
		"+15005550006":  "+15*******06",
		"+12345":        "+12*45",
		"+1234":         "***",
		"":              "***",
	} {
		if got := address.MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { address.MaskPhone("+447700900123") }); n != 1 {
		t.Errorf("%v allocations per mask, want 1 (it is on every SMS outcome line)", n)
	}
}
