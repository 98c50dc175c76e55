package templates

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gymhq/herald/failure"
)

// DefaultSMSShorten are the data keys an SMS may shorten to stay within its
// segment budget when routing.yaml does not say (sms.shorten): the free
// text that producers fill and nobody proofreads for length — the front
// desk's reason, then the class's location and name.
var DefaultSMSShorten = []string{"reason", "class_location", "class_name"}

// maxWordCut is how many characters a cut may give up to end at a word.
const maxWordCut = 16

// ellipsis ends a shortened value; smsText turns it into "..." so that it
// costs GSM-7 septets, not a switch to UCS-2.
const ellipsis = "…"

// fitSMS enforces the rule's segment budget on an SMS that renders over
// it, at send time, since lint only holds the samples to it: the same
// template with a 960-character reason would otherwise go out as 7
// segments and cost 7 times as much, silently.
//
// The policy: take the keys of the rule's shorten list that d holds with a
// value, longest value first (list order among equals), so the field that
// overflowed is cut before a short one is touched. Cut the first to the
// longest prefix (whole characters, trailing spaces trimmed) that,
// followed by an ellipsis, makes the message fit; if even the ellipsis
// alone does not fit, keep that and go on to the next key. A cut that
// would end inside a word ends at the word before instead, when that word
// boundary is at most maxWordCut characters back. The message is measured as sent (GSM-7 or UCS-2, whichever the
// text needs). When the whole list does not make it fit — the template's
// fixed copy or unshortenable data is over budget by itself — the result
// is permanent failure.ReasonOverBudget for this recipient's message: it is
// dead-lettered, never sent at a higher cost.
//
// d is the render's view of the data; fitSMS sets the shortened values
// over the data's. render executes
// the SMS template on d as Render does. It returns the text and the keys
// it shortened.
func fitSMS(r *rule, d *view, render func() (string, error)) (string, []string, error) {
	var keys []string
	for _, k := range r.smsShorten {
		if d.at(k) != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	slices.SortStableFunc(keys, func(a, b string) int {
		return utf8.RuneCountInString(d.at(b)) - utf8.RuneCountInString(d.at(a))
	})
	var shortened []string
	for _, k := range keys {
		orig := []rune(d.at(k))
		shortened = append(shortened, k)
		cut := func(n int) string {
			p := orig[:n]
			if n < len(orig) && !unicode.IsSpace(orig[n]) {
				// Mid-word: end at the word before, unless that loses
				// more than a long word's worth of text.
				for i := n - 1; i >= 0 && n-i <= maxWordCut; i-- {
					if unicode.IsSpace(p[i]) {
						p = p[:i]
						break
					}
				}
			}
			return strings.TrimRightFunc(string(p), unicode.IsSpace) + ellipsis
		}
		// The longest n in [0, len(orig)) whose cut fits. Shorter data
		// never renders longer, so the segments are monotonic in n.
		lo, hi, best := 0, len(orig)-1, -1
		var bestText string
		for lo <= hi {
			mid := (lo + hi) / 2
			d.set(k, cut(mid))
			text, err := render()
			if err != nil {
				return "", nil, err
			}
			if SMS(text).Segments <= r.maxSegments {
				best, bestText = mid, text
				lo = mid + 1
			} else {
				hi = mid - 1
			}
		}
		if best >= 0 {
			return bestText, shortened, nil
		}
		d.set(k, ellipsis)
	}
	text, err := render()
	if err != nil {
		return "", nil, err
	}
	info := SMS(text)
	if info.Segments <= r.maxSegments { // only when no key had a value
		return text, shortened, nil
	}
	what := "nothing to shorten (sms.shorten is empty or its keys are absent)"
	if len(shortened) > 0 {
		what = "with " + strings.Join(shortened, ", ") + " shortened to an ellipsis"
	}
	return "", nil, failure.Errorf(failure.Permanent, failure.ReasonOverBudget,
		"%s/routing.yaml (%s): the SMS is %d %s characters, %d segments, over the budget of %d (sms.max_segments) %s%s",
		r.eventType, r.label(), info.Units, info.Encoding, info.Segments, r.maxSegments, what, unshortened(r, d, text))
}

// unshortened names, for fitSMS's refusal, the longest data values in the
// message that sms.shorten does not list (at most three, each of at least
// unshortenedMin characters), so that whoever reads the dead letter sees
// which field overflowed: an outside tester's 100 KB member name was
// refused "with reason, class_location, class_name shortened", naming
// only fields that were not the cause. A value counts as in the message
// when the text holds it whole.
func unshortened(r *rule, d *view, text string) string {
	type long struct {
		k string
		n int
	}
	var found []long
	for k, v := range d.data.All() {
		// As sent: smsText turns typographic punctuation into ASCII
		// in the text, so the value is compared in the same form.
		if n := utf8.RuneCountInString(v); n >= unshortenedMin && !slices.Contains(r.smsShorten, k) && strings.Contains(text, smsText(v)) {
			found = append(found, long{k, n})
		}
	}
	if len(found) == 0 {
		return ""
	}
	slices.SortStableFunc(found, func(a, b long) int { return b.n - a.n })
	var parts []string
	for _, f := range found[:min(3, len(found))] {
		parts = append(parts, fmt.Sprintf("%s (%d characters)", f.k, f.n))
	}
	return "; in the message and not in sms.shorten: " + strings.Join(parts, ", ")
}

// unshortenedMin is the shortest value unshortened names: shorter ones
// are not what puts a message over its budget.
const unshortenedMin = 40
