package templates

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// escapers are html/template's escaping functions that compiled HTML parts
// call, by the names its escaping inserts into a pipeline, reimplemented
// from html/template (html.go, url.go) for the only values compiled parts
// have: plain strings, never template.HTML or other typed content. Any
// other escaper leaves the part to html/template.
var escapers = map[string]escaper{
	"_html_template_htmlescaper":    htmlEscaper,
	"_html_template_rcdataescaper":  htmlEscaper, // the same for plain text
	"_html_template_attrescaper":    htmlEscaper, // the same for plain text
	"_html_template_nospaceescaper": htmlNospaceEscaper,
	"_html_template_commentescaper": commentEscaper,
	"_html_template_urlfilter":      urlFilter,
	"_html_template_urlescaper":     urlEscaper,
	"_html_template_urlnormalizer":  urlNormalizer,
}

// htmlEscaper escapes for HTML text, RCDATA (<title>, <textarea>) and
// quoted attribute values: NUL becomes U+FFFD, and " & ' + < > character
// references ('+' as &#43;, unlike template.HTMLEscapeString).
func htmlEscaper(dst []byte, s string) []byte {
	return htmlReplace(dst, s, htmlReplacementTable, true)
}

// htmlNospaceEscaper escapes for an unquoted attribute value; an empty
// value becomes html/template's failsafe ZgotmplZ.
func htmlNospaceEscaper(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, filterFailsafe...)
	}
	return htmlReplace(dst, s, htmlNospaceReplacementTable, false)
}

// commentEscaper drops a value inside an HTML comment.
func commentEscaper(dst []byte, _ string) []byte { return dst }

// urlFilter passes a relative URL or one with scheme http, https or
// mailto, and replaces any other with #ZgotmplZ.
func urlFilter(dst []byte, s string) []byte {
	if !isSafeURL(s) {
		return append(append(dst, '#'), filterFailsafe...)
	}
	return append(dst, s...)
}

// urlEscaper percent-encodes s for a URL query or path segment.
func urlEscaper(dst []byte, s string) []byte { return processURL(dst, s, false) }

// urlNormalizer percent-encodes what cannot stand in a URL, keeping
// reserved characters and valid %xx escapes.
func urlNormalizer(dst []byte, s string) []byte { return processURL(dst, s, true) }

// filterFailsafe is what html/template puts in place of an unsafe value.
const filterFailsafe = "ZgotmplZ"

// htmlReplace appends s to dst with the ASCII characters table maps
// replaced, as html/template's htmlReplacer does. Without badRunes it also
// replaces the noncharacters U+FDD0–U+FDEF and U+FFF0–U+FFFF by numeric
// character references, as it does each byte that is not UTF-8 (which
// decodes as U+FFFD). With badRunes no byte of a multi-byte or invalid
// sequence is replaced, so those are copied without decoding.
func htmlReplace(dst []byte, s string, table []string, badRunes bool) []byte {
	written := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if int(c) < len(table) && table[c] != "" {
				dst = append(dst, s[written:i]...)
				dst = append(dst, table[c]...)
				written = i + 1
			}
			i++
			continue
		}
		if badRunes {
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if 0xfdd0 <= r && r <= 0xfdef || 0xfff0 <= r && r <= 0xffff {
			dst = append(dst, s[written:i]...)
			dst = append(dst, "&#x"...)
			dst = strconv.AppendInt(dst, int64(r), 16)
			dst = append(dst, ';')
			written = i + w
		}
		i += w
	}
	return append(dst, s[written:]...)
}

// htmlReplacementTable is html/template's: what to replace in HTML text
// and in a quoted attribute value.
var htmlReplacementTable = []string{
	0:    "\uFFFD",
	'"':  "&#34;",
	'&':  "&amp;",
	'\'': "&#39;",
	'+':  "&#43;",
	'<':  "&lt;",
	'>':  "&gt;",
}

// htmlNospaceReplacementTable is html/template's: what to replace in an
// unquoted attribute value.
var htmlNospaceReplacementTable = []string{
	0:    "&#xfffd;",
	'\t': "&#9;",
	'\n': "&#10;",
	'\v': "&#11;",
	'\f': "&#12;",
	'\r': "&#13;",
	' ':  "&#32;",
	'"':  "&#34;",
	'&':  "&amp;",
	'\'': "&#39;",
	'+':  "&#43;",
	'<':  "&lt;",
	'=':  "&#61;",
	'>':  "&gt;",
	'`':  "&#96;",
}

// isSafeURL reports whether s is a relative URL or has scheme http, https
// or mailto.
func isSafeURL(s string) bool {
	if protocol, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(protocol, "/") {
		if !strings.EqualFold(protocol, "http") && !strings.EqualFold(protocol, "https") && !strings.EqualFold(protocol, "mailto") {
			return false
		}
	}
	return true
}

// processURL appends s to dst with every byte but RFC 3986 unreserved
// ones percent-encoded (lower-case hex); when norm, reserved characters
// and valid %xx escapes are kept as they are.
func processURL(dst []byte, s string, norm bool) []byte {
	const hex = "0123456789abcdef"
	written := 0
	for i, n := 0, len(s); i < n; i++ {
		c := s[i]
		switch c {
		case '!', '#', '$', '&', '*', '+', ',', '/', ':', ';', '=', '?', '@', '[', ']':
			if norm {
				continue
			}
		case '-', '.', '_', '~':
			continue
		case '%':
			if norm && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				continue
			}
		default:
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
				continue
			}
		}
		dst = append(dst, s[written:i]...)
		dst = append(dst, '%', hex[c>>4], hex[c&0xf])
		written = i + 1
	}
	return append(dst, s[written:]...)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
