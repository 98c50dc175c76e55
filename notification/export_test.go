package notification

// ParseCheckingEach is Parse with the binary form's strings checked for
// UTF-8 one by one, as decodeBinary's second pass does when the first,
// which checks the front in pieces, cannot answer: FuzzDecode holds Parse
// to it.
func ParseCheckingEach(b []byte) (*Notification, error) {
	if len(b) > 0 && len(b) <= MaxEncodedSize && b[0] == formatBinary {
		return decodeBinaryWith(string(b), nil, false)
	}
	return Parse(b)
}

// ReadJSON is the JSON form's reader without reflection, and
// UnmarshalJSON the same bytes through encoding/json: FuzzReadJSON holds
// the first to the second.
func ReadJSON(b []byte) (*Notification, bool) { return readJSON(b, false, nil) }

func UnmarshalJSON(b []byte) (*Notification, error) { return unmarshalJSON(b, nil) }
