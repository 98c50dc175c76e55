package templates

import (
	"strings"
	"unicode/utf8"
)

// GSM 03.38: an SMS made only of these characters is sent in 7-bit
// encoding (160 characters a segment, 153 when concatenated); a single
// character outside them switches the whole message to UCS-2 (70, 67).
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtended = "^{}\\[~]|€\f" // each costs two septets (escape + char)
)

// gsmSeptets returns the length of s in GSM-7 septets, and false with the
// first offending rune when s is not representable in GSM-7. ASCII, most
// of any SMS, is looked up in gsmASCII; other runes are searched for in
// the alphabets.
func gsmSeptets(s string) (int, rune, bool) {
	n := 0
	for _, r := range s {
		if r < utf8.RuneSelf {
			c := gsmASCII[r]
			if c == 0 {
				return 0, r, false
			}
			n += int(c)
			continue
		}
		switch {
		case strings.ContainsRune(gsmBasic, r):
			n++
		case strings.ContainsRune(gsmExtended, r):
			n += 2
		default:
			return 0, r, false
		}
	}
	return n, 0, true
}

// gsmASCII is the septets each ASCII character costs in GSM-7: 1 in the
// basic alphabet, 2 in the extension table, 0 when it is not GSM-7.
var gsmASCII = func() (t [utf8.RuneSelf]uint8) {
	for r := range rune(utf8.RuneSelf) {
		switch {
		case strings.ContainsRune(gsmBasic, r):
			t[r] = 1
		case strings.ContainsRune(gsmExtended, r):
			t[r] = 2
		}
	}
	return t
}()

// smsPunctuation maps typographic punctuation that slips into copy and data
// (smart quotes from a word processor, a non-breaking space in a class
// name) to its GSM-7 equivalent, so one character does not halve the
// segment size. Letters are left alone: a member's name is spelt as given.
var smsPunctuation = strings.NewReplacer(
	"\u2018", "'", "\u2019", "'", "\u201A", "'", "\u201B", "'",
	"\u201C", "\"", "\u201D", "\"", "\u201E", "\"", "\u00AB", "\"", "\u00BB", "\"",
	"\u2013", "-", "\u2014", "-", "\u2212", "-", "\u2026", "...",
	"\u00A0", " ", "\u2009", " ", "\u202F", " ", "\u200B", "",
)

// smsText normalises punctuation when s has anything outside ASCII.
func smsText(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return smsPunctuation.Replace(s)
		}
	}
	return s
}

// SMS encodings, as carriers and Twilio name them.
const (
	GSM7 = "GSM-7"
	UCS2 = "UCS-2"
)

// SMSInfo is what an SMS costs: its encoding, its length in that
// encoding's units (GSM-7 septets, or UTF-16 code units for UCS-2) and the
// number of segments a carrier bills. GSM-7 fits 160 septets in one
// segment and 153 in each part of a longer message; UCS-2 fits 70 and 67
// (3GPP TS 23.038 and 23.040: the user data header of a concatenated
// message takes 6 of the 140 octets).
type SMSInfo struct {
	Encoding string
	Units    int
	Segments int
	// NonGSM is the first character that forced UCS-2, and NonGSMAt its
	// position in the text (1-based, in characters); NonGSMAt is 0 for
	// GSM-7.
	NonGSM   rune
	NonGSMAt int
}

// SMS measures text as it would be sent.
func SMS(text string) SMSInfo {
	if n, _, ok := gsmSeptets(text); ok {
		return SMSInfo{Encoding: GSM7, Units: n, Segments: segments(n, 160, 153)}
	}
	info := SMSInfo{Encoding: UCS2}
	pos := 0
	for _, r := range text {
		pos++
		if info.NonGSMAt == 0 && !isGSM(r) {
			info.NonGSM, info.NonGSMAt = r, pos
		}
		if r >= 0x10000 {
			info.Units += 2 // a surrogate pair
		} else {
			info.Units++
		}
	}
	info.Segments = segments(info.Units, 70, 67)
	return info
}

// SMSBudget is how many units fit in n segments of encoding.
func SMSBudget(encoding string, n int) int {
	single, part := 160, 153
	if encoding == UCS2 {
		single, part = 70, 67
	}
	if n <= 1 {
		return single
	}
	return part * n
}

func segments(units, single, part int) int {
	switch {
	case units == 0:
		return 0
	case units <= single:
		return 1
	}
	return (units + part - 1) / part
}

func isGSM(r rune) bool {
	return strings.ContainsRune(gsmBasic, r) || strings.ContainsRune(gsmExtended, r)
}
