package templates

import "strings"

// GSM 03.38: an SMS made only of these characters is sent in 7-bit
// encoding (160 characters a segment, 153 when concatenated); a single
// character outside them switches the whole message to UCS-2 (70, 67).
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtended = "^{}\\[~]|€\f" // each costs two septets (escape + char)
)

// gsmSeptets returns the length of s in GSM-7 septets, and false with the
// first offending rune when s is not representable in GSM-7.
func gsmSeptets(s string) (int, rune, bool) {
	n := 0
	for _, r := range s {
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

// smsBudget is the number of GSM-7 septets that fit in segments segments.
func smsBudget(segments int) int {
	if segments <= 1 {
		return 160
	}
	return 153 * segments
}

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
