package notification

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gymhq/herald/failure"
)

// The binary form (format 1) is what Encode writes. It is built for a
// cheap Decode: no reflection, no escapes, one allocation for every
// string of the notification. docs/contracts.md §3 has the same layout
// for anyone writing a decoder elsewhere.
//
//	notification = format fields field*
//	format       = 0x01 (one byte; never the first byte of JSON, which
//	               starts with '{' or whitespace, so Decode tells the
//	               forms apart by it)
//	fields       = uvarint: how many fields follow (20 in this version)
//
// The fields, in this order (uvarint is encoding/binary's unsigned
// varint, written in its shortest form; varint is its zig-zag signed one):
//
//	 1 id              string       11 created_at       time
//	 2 event_id        string       12 attempt          varint
//	 3 event_type      string       13 not_before       time
//	 4 template        string       14 first_failed_at  time
//	 5 channel         string       15 category         string
//	 6 locale          string       16 time_zone        string
//	 7 recipient_id    string       17 due_at           time
//	 8 to              string       18 deferred         string
//	 9 data            data         19 cancel_keys      list
//	10 priority        string       20 expires_at       time
//
//	string = uvarint byte length, then that many bytes of valid UTF-8
//	data   = uvarint 0 for no map (JSON null), else 1 + the pair count,
//	         then the pairs as key string, value string, keys in strictly
//	         ascending byte order (so the encoding of a notification is
//	         one byte string, and duplicate keys cannot be written)
//	list   = uvarint count, then count strings
//	time   = 0x00: the zero time (time.Time{}; IsZero)
//	       | 0x01 varint unix-seconds uvarint nanoseconds (< 1e9): UTC
//	       | 0x02 varint unix-seconds uvarint nanoseconds varint
//	         offset-minutes (not 0, under 24 h): a time with that zone
//	         offset, read back as the JSON form's "+hh:mm" is (the local
//	         zone if it has that offset then, else an unnamed fixed zone)
//
// A zone offset is kept in whole minutes, as RFC 3339 and so the JSON
// form keep it (truncated towards zero; only historical local mean times
// have seconds); the instant is kept exactly.
//
// Extending it: a new field is appended after field 20 and the field
// count raised; it is written as a uvarint byte length and its bytes, so
// a reader that knows fewer fields skips it (dropping it, as Decode drops
// unknown JSON keys) and a deploy may roll either way. A reader refuses
// fewer than the 20 fields of format 1. A change that old readers must
// not take for a format-1 notification (a field removed, reordered or
// retyped) takes a new format byte, and readers of it must be deployed
// before any writer.
//
// Decode refuses anything Encode would not write: a shorter field count,
// lengths or counts past the end, varints not in their shortest form,
// invalid UTF-8 in any string, data keys out of order or repeated, times
// out of the JSON form's range (years 0 to 9999), and trailing bytes. So
// for a format-1 input of 20 fields that decodes, Encode gives back the
// same bytes (FuzzDecode holds it to that).
const (
	formatBinary = 0x01
	fieldsV1     = 20

	timeZero   = 0x00
	timeUTC    = 0x01
	timeOffset = 0x02
)

// maxHintedPairs is the most data pairs a decode allocates room for
// before reading them: more than real records hold, far less than a count
// that only the record's length bounds.
const maxHintedPairs = 64

// encodeBinary writes n in the binary form; it is at most limit bytes, or
// a permanent too_large error.
func encodeBinary(n *Notification, limit int) ([]byte, error) {
	// Data's fields are in key order already; invalid UTF-8 anywhere
	// takes the slow way (coerced).
	pairs := n.Data.f
	if !n.validUTF8() {
		return encodeBinary(n.coerced(), limit)
	}
	for _, t := range [...]struct {
		name string
		t    time.Time
	}{{"created_at", n.CreatedAt}, {"not_before", n.NotBefore}, {"first_failed_at", n.FirstFailedAt}, {"due_at", n.DueAt}, {"expires_at", n.ExpiresAt}} {
		if err := checkTime(t.t); err != nil {
			return nil, fmt.Errorf("notification %s: %s: %w", n.ID, t.name, err)
		}
	}

	size := 1 + uvarintLen(fieldsV1)
	for _, s := range [...]string{n.ID, n.EventID, n.EventType, n.Template, string(n.Channel), n.Locale, n.RecipientID, n.To,
		string(n.Priority), n.Category, n.TimeZone, n.Deferred} {
		size += stringLen(s)
	}
	if pairs == nil {
		size++
	} else {
		size += uvarintLen(uint64(len(pairs)) + 1)
		for _, p := range pairs {
			size += stringLen(p.Key) + stringLen(p.Value)
		}
	}
	size += uvarintLen(zigzag(int64(n.Attempt)))
	size += uvarintLen(uint64(len(n.CancelKeys)))
	for _, k := range n.CancelKeys {
		size += stringLen(k)
	}
	for _, t := range [...]time.Time{n.CreatedAt, n.NotBefore, n.FirstFailedAt, n.DueAt, n.ExpiresAt} {
		size += timeLen(t)
	}
	if size > limit {
		return nil, failure.Errorf(failure.Permanent, failure.ReasonTooLarge,
			"%s notification %s is %d bytes encoded, more than the %d allowed", n.Channel, n.ID, size, limit)
	}

	b := make([]byte, 0, size)
	b = append(b, formatBinary)
	b = appendUvarint(b, fieldsV1)
	b = appendString(b, n.ID)
	b = appendString(b, n.EventID)
	b = appendString(b, n.EventType)
	b = appendString(b, n.Template)
	b = appendString(b, string(n.Channel))
	b = appendString(b, n.Locale)
	b = appendString(b, n.RecipientID)
	b = appendString(b, n.To)
	if pairs == nil {
		b = append(b, 0)
	} else {
		b = appendUvarint(b, uint64(len(pairs))+1)
		for _, p := range pairs {
			b = appendString(b, p.Key)
			b = appendString(b, p.Value)
		}
	}
	b = appendString(b, string(n.Priority))
	b = appendTime(b, n.CreatedAt)
	b = appendUvarint(b, zigzag(int64(n.Attempt)))
	b = appendTime(b, n.NotBefore)
	b = appendTime(b, n.FirstFailedAt)
	b = appendString(b, n.Category)
	b = appendString(b, n.TimeZone)
	b = appendTime(b, n.DueAt)
	b = appendString(b, n.Deferred)
	b = appendUvarint(b, uint64(len(n.CancelKeys)))
	for _, k := range n.CancelKeys {
		b = appendString(b, k)
	}
	b = appendTime(b, n.ExpiresAt)
	if len(b) != size {
		panic(fmt.Sprintf("notification: encoded %d bytes, sized %d", len(b), size))
	}
	return b, nil
}

// decodeBinary parses the binary form, b, without validating the result.
// Every string field is a substring of b (Parse's copy of the record, or
// the record itself for DecodeShared), so the notification's strings cost
// one allocation at most. Keeping any one field keeps the whole record:
// strings.Clone what outlives the notification (the bench's tracker kept
// ids and with them every delivered record).
func decodeBinary(b string, into *decodeInto) (*Notification, error) {
	if n, err := decodeBinaryWith(b, into, true); err != errCheckEach {
		return n, err
	}
	// The first pass filled the buffer with what the second will put in
	// it again; emptied all the same, so that the second starts as the
	// first.
	if into != nil {
		clear(into.data)
		into.data = into.data[:0]
	}
	return decodeBinaryWith(b, into, false)
}

// errCheckEach is decodeBinaryWith's answer when the record's front holds
// invalid UTF-8 or an error: the caller decodes again checking each string
// on its own, so that the error names the field and byte it always did.
var errCheckEach = errors.New("notification: check each string")

// decodeBinaryWith is decodeBinary. With pieces, the strings from the id
// to the last data value (the record's front) are checked for UTF-8 a few
// calls at a time instead of one call each: a call per string was 2.7 µs
// per notification in a profile of issue 14's pipeline scenario, most of
// the strings short. A piece runs from one string's first byte to a
// later one's last, lengths between them included, and is cut wherever a
// length (or the data's count) takes more than one byte. Every length
// inside a piece is then one byte below 0x80: an ASCII byte is a
// character of its own, never part of another's encoding, so no character
// can start in one string and end in the next or take in a length's
// byte, and a piece is valid exactly when each of its strings is. A
// record whose lengths are all short is one piece; a push token or a long
// value costs one cut more each. Invalid UTF-8 or an error in the front
// returns errCheckEach; errors after it are returned as they are.
func decodeBinaryWith(b string, into *decodeInto, pieces bool) (*Notification, error) {
	r := reader{s: b, i: 1}
	nf := r.uvarint("field count")
	r.cut = r.i
	r.unchecked = pieces
	switch {
	case r.err != nil:
	case nf < fieldsV1:
		r.fail("field count", fmt.Sprintf("%d fields, want at least %d", nf, fieldsV1))
	case nf > uint64(len(b)):
		// Each field takes a byte at least: a count past the record's
		// length is damage, not a newer writer's fields.
		r.fail("field count", fmt.Sprintf("%d fields cannot fit in a %d-byte record", nf, len(b)))
	}
	// The caller's notification, when it gives one: a new one made first
	// and then replaced was still made, a heap allocation of ~300 bytes per
	// record (3% of the pipeline's CPU in issue 14's nineteenth profile).
	var n *Notification
	if into != nil {
		n = into.n
		*n = Notification{}
	} else {
		n = &Notification{}
	}
	n.ID = r.str("id")
	n.EventID = r.str("event_id")
	n.EventType = r.str("event_type")
	n.Template = r.str("template")
	n.Channel = Channel(r.str("channel"))
	n.Locale = r.str("locale")
	n.RecipientID = r.str("recipient_id")
	n.To = r.str("to")
	count := r.i
	if c := r.uvarint("data"); c > 0 {
		if r.unchecked && r.i-count > 1 {
			r.piece(count)
		}
		c--
		if c > uint64(len(r.s)-r.i)/2 {
			r.fail("data", fmt.Sprintf("%d pairs in %d bytes", c, len(r.s)-r.i))
		} else {
			var fs []Field
			if into != nil && into.data != nil {
				fs = into.data[:0]
			} else {
				// Sized for the count only up to what real records hold:
				// the length check bounds it by the bytes left, not by
				// what that many fields take, so a short hostile record
				// would allocate many times its size.
				fs = make([]Field, 0, min(c, maxHintedPairs))
			}
			var prev string
			for j := uint64(0); j < c && r.err == nil; j++ {
				k := r.str("data key")
				v := r.str("data value")
				if j > 0 && k <= prev && r.err == nil {
					r.fail("data", fmt.Sprintf("key %q after %q: keys must be in strictly ascending order", k, prev))
				}
				fs = append(fs, Field{k, v})
				prev = k
			}
			n.Data = Data{f: fs} // ascending and valid UTF-8, as checked
			if into != nil {
				into.data = fs // grown, for the next record
			}
		}
	}
	if pieces {
		if r.err == nil {
			r.piece(r.i)
		}
		if r.err != nil || r.invalid {
			return nil, errCheckEach
		}
		r.unchecked = false
	}
	n.Priority = Priority(r.str("priority"))
	n.CreatedAt = r.time("created_at")
	if a := unzigzag(r.uvarint("attempt")); int64(int(a)) != a {
		r.fail("attempt", fmt.Sprintf("%d is out of range", a))
	} else {
		n.Attempt = int(a)
	}
	n.NotBefore = r.time("not_before")
	n.FirstFailedAt = r.time("first_failed_at")
	n.Category = r.str("category")
	n.TimeZone = r.str("time_zone")
	n.DueAt = r.time("due_at")
	n.Deferred = r.str("deferred")
	if c := r.uvarint("cancel_keys"); c > 0 {
		if c > MaxCancelKeys || c > uint64(len(r.s)-r.i) {
			r.fail("cancel_keys", fmt.Sprintf("%d keys in %d bytes, limit %d", c, len(r.s)-r.i, MaxCancelKeys))
		} else {
			n.CancelKeys = make([]string, c)
			for j := range n.CancelKeys {
				n.CancelKeys[j] = r.str("cancel key")
			}
		}
	}
	n.ExpiresAt = r.time("expires_at")
	// Fields a later writer appended: a byte length and bytes each.
	for f := uint64(fieldsV1); f < nf && r.err == nil; f++ {
		l := r.uvarint("appended field")
		if l > uint64(len(r.s)-r.i) {
			r.fail("appended field", fmt.Sprintf("%d bytes, %d left", l, len(r.s)-r.i))
			break
		}
		r.i += int(l)
	}
	if r.err == nil && r.i != len(r.s) {
		return nil, failure.Errorf(failure.Poison, failure.ReasonDecode, "notification: trailing data: %d bytes after the last field", len(r.s)-r.i)
	}
	if r.err != nil {
		return nil, failure.Poisoned(failure.ReasonDecode, r.err)
	}
	return n, nil
}

// reader reads the binary form. The first error sticks; later reads
// return zero values.
type reader struct {
	s   string
	i   int
	err error
	// unchecked leaves each string's UTF-8 to piece (decodeBinaryWith):
	// cut is where the piece being read began, and invalid notes a piece
	// that was not valid UTF-8.
	unchecked, invalid bool
	cut                int
}

// piece checks the bytes from the last cut to end, a long length's first
// byte or the end of the front, and cuts again where r is: at the string
// after that length.
func (r *reader) piece(end int) {
	if !utf8.ValidString(r.s[r.cut:end]) {
		r.invalid = true
	}
	r.cut = r.i
}

func (r *reader) fail(field, why string) {
	if r.err == nil {
		r.err = fmt.Errorf("notification: %s at byte %d: %s", field, r.i, why)
	}
}

// uvarint reads an unsigned varint in its shortest form.
func (r *reader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	var x uint64
	for j, shift := 0, uint(0); j < 10; j, shift = j+1, shift+7 {
		if r.i >= len(r.s) {
			r.fail(field, "truncated")
			return 0
		}
		c := r.s[r.i]
		r.i++
		if c < 0x80 {
			switch {
			case j == 9 && c > 1:
				r.fail(field, "varint overflows 64 bits")
				return 0
			case c == 0 && j > 0:
				r.fail(field, "varint not in its shortest form")
				return 0
			}
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
	}
	r.fail(field, "varint overflows 64 bits")
	return 0
}

func (r *reader) str(field string) string {
	start := r.i
	l := r.uvarint(field)
	if r.err != nil {
		return ""
	}
	if l > uint64(len(r.s)-r.i) {
		r.fail(field, fmt.Sprintf("%d bytes, %d left", l, len(r.s)-r.i))
		return ""
	}
	s := r.s[r.i : r.i+int(l)]
	if r.unchecked {
		if r.i-start > 1 {
			r.piece(start)
		}
	} else if !utf8.ValidString(s) {
		r.fail(field, "not valid UTF-8")
		return ""
	}
	r.i += int(l)
	return s
}

// maxUnix bounds the seconds of a time before it is built: well past the
// years 0 to 9999 that the JSON form can hold, far from overflow.
const maxUnix = 1 << 40

func (r *reader) time(field string) time.Time {
	if r.err != nil {
		return time.Time{}
	}
	if r.i >= len(r.s) {
		r.fail(field, "truncated")
		return time.Time{}
	}
	tag := r.s[r.i]
	r.i++
	if tag == timeZero {
		return time.Time{}
	}
	if tag != timeUTC && tag != timeOffset {
		r.fail(field, fmt.Sprintf("time kind 0x%02x is not 0x00, 0x01 or 0x02", tag))
		return time.Time{}
	}
	sec := unzigzag(r.uvarint(field))
	nsec := r.uvarint(field)
	var off int64
	if tag == timeOffset {
		off = unzigzag(r.uvarint(field))
	}
	switch {
	case r.err != nil:
		return time.Time{}
	case sec < -maxUnix || sec > maxUnix:
		r.fail(field, fmt.Sprintf("%d seconds is out of range", sec))
		return time.Time{}
	case nsec >= 1e9:
		r.fail(field, fmt.Sprintf("%d nanoseconds is not under a second", nsec))
		return time.Time{}
	case tag == timeOffset && off == 0:
		r.fail(field, "a zone offset of 0 is written as UTC")
		return time.Time{}
	case off <= -24*60 || off >= 24*60:
		r.fail(field, fmt.Sprintf("zone offset %d minutes is a day or more", off))
		return time.Time{}
	}
	off *= 60
	t := time.Unix(sec, int64(nsec))
	if tag == timeUTC {
		t = t.UTC()
	} else if _, lo := t.In(time.Local).Zone(); int64(lo) == off {
		// As time.Parse reads "+hh:mm" (and so the JSON form does).
		t = t.In(time.Local)
	} else {
		t = t.In(time.FixedZone("", int(off)))
	}
	if t.IsZero() {
		r.fail(field, "the zero time is written as 0x00")
		return time.Time{}
	}
	if err := checkTime(t); err != nil {
		r.fail(field, err.Error())
		return time.Time{}
	}
	return t
}

// checkTime refuses a time the JSON form cannot hold either
// (time.Time.MarshalJSON): a year outside 0 to 9999, or a zone offset
// of a day or more.
func checkTime(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("year %d is outside of range [0,9999]", y)
	}
	if _, off := t.Zone(); off <= -86400 || off >= 86400 {
		return fmt.Errorf("zone offset %ds is a day or more", off)
	}
	return nil
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, timeZero)
	}
	off := offsetMinutes(t)
	if off == 0 {
		b = append(b, timeUTC)
	} else {
		b = append(b, timeOffset)
	}
	b = appendUvarint(b, zigzag(t.Unix()))
	b = appendUvarint(b, uint64(t.Nanosecond()))
	if off != 0 {
		b = appendUvarint(b, zigzag(int64(off)))
	}
	return b
}

func timeLen(t time.Time) int {
	if t.IsZero() {
		return 1
	}
	n := 1 + uvarintLen(zigzag(t.Unix())) + uvarintLen(uint64(t.Nanosecond()))
	if off := offsetMinutes(t); off != 0 {
		n += uvarintLen(zigzag(int64(off)))
	}
	return n
}

// offsetMinutes is t's zone offset in whole minutes, as RFC 3339 writes
// it.
func offsetMinutes(t time.Time) int {
	_, off := t.Zone()
	return off / 60
}

func appendString(b []byte, s string) []byte {
	b = appendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func appendUvarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(x uint64) int64 { return int64(x>>1) ^ -int64(x&1) }

// validUTF8 reports whether every string of n is valid UTF-8 (Data's by
// its flag).
func (n *Notification) validUTF8() bool {
	for _, s := range [...]string{n.ID, n.EventID, n.EventType, n.Template, string(n.Channel), n.Locale, n.RecipientID, n.To,
		string(n.Priority), n.Category, n.TimeZone, n.Deferred} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	for _, k := range n.CancelKeys {
		if !utf8.ValidString(k) {
			return false
		}
	}
	return n.Data.ValidUTF8()
}

// coerced is n with each byte of invalid UTF-8 replaced by U+FFFD, as
// encoding/json writes it: the JSON Encode wrote such a notification
// (Decode then refused it if its id no longer matched), so the binary
// Encode writes the same. Data keys that become equal keep the value of
// the greatest original key, as the JSON form's last duplicate won.
func (n *Notification) coerced() *Notification {
	c := *n
	for _, p := range [...]*string{&c.ID, &c.EventID, &c.EventType, &c.Template, (*string)(&c.Channel), &c.Locale, &c.RecipientID,
		&c.To, (*string)(&c.Priority), &c.Category, &c.TimeZone, &c.Deferred} {
		*p = coerce(*p)
	}
	if n.Data.f != nil {
		// In the original key order, so that of keys made equal the
		// greatest original one's value wins.
		fs := make([]Field, len(n.Data.f))
		for i, f := range n.Data.f {
			fs[i] = Field{coerce(f.Key), coerce(f.Value)}
		}
		c.Data = NewData(fs)
	}
	if n.CancelKeys != nil {
		c.CancelKeys = make([]string, len(n.CancelKeys))
		for i, k := range n.CancelKeys {
			c.CancelKeys[i] = coerce(k)
		}
	}
	return &c
}

// coerce replaces each byte of invalid UTF-8 in s by U+FFFD.
func coerce(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
