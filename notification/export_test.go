package notification

// ParseCheckingEach is Parse with the binary form's strings checked for
// UTF-8 one by one, as decodeBinary does when its one check over the
// record's front cannot answer: FuzzDecode holds Parse to it.
func ParseCheckingEach(b []byte) (*Notification, error) {
	if len(b) > 0 && len(b) <= MaxEncodedSize && b[0] == formatBinary {
		return decodeBinaryWith(string(b), nil, false)
	}
	return Parse(b)
}
