package smtpsink

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
)

// message is what the sink understood of a received message.
type message struct {
	from, to, subject       string // decoded header values
	messageID, notification string
	// unsubscribe and unsubscribePost are the RFC 8058 headers.
	unsubscribe, unsubscribePost string
	text, html                   string
	attachments                  []attachment
}

type attachment struct{ name, contentType string }

const maxDepth = 8

var wordDecoder = new(mime.WordDecoder)

// parseMessage reads an RFC 5322 message with MIME parts, decoding
// quoted-printable and base64 bodies and RFC 2047 header words. The first
// text/plain and text/html parts that are not attachments are the bodies.
func parseMessage(raw []byte) (*message, error) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	p := &message{
		from:            decodeAddresses(m.Header, "From"),
		to:              decodeAddresses(m.Header, "To"),
		subject:         decodeWords(m.Header.Get("Subject")),
		messageID:       strings.TrimSpace(m.Header.Get("Message-Id")),
		notification:    strings.TrimSpace(m.Header.Get("X-Herald-Notification-Id")),
		unsubscribe:     strings.TrimSpace(m.Header.Get("List-Unsubscribe")),
		unsubscribePost: strings.TrimSpace(m.Header.Get("List-Unsubscribe-Post")),
	}
	if err := p.walk(textproto.MIMEHeader(m.Header), m.Body, 0); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *message) walk(h textproto.MIMEHeader, body io.Reader, depth int) error {
	if depth > maxDepth {
		return errors.New("MIME parts nested too deeply")
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii"
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("content type %q: %w", ct, err)
	}
	body = transferDecoder(h.Get("Content-Transfer-Encoding"), body)

	if strings.HasPrefix(mediaType, "multipart/") {
		if params["boundary"] == "" {
			return fmt.Errorf("%s without a boundary", mediaType)
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextRawPart: the transfer encoding is decoded by walk, for the
			// top-level body and the parts alike.
			part, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", mediaType, err)
			}
			if err := p.walk(part.Header, part, depth+1); err != nil {
				return err
			}
		}
	}

	disposition, dparams, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	if disposition == "attachment" || name != "" {
		if _, err := io.Copy(io.Discard, body); err != nil {
			return fmt.Errorf("attachment %q: %w", name, err)
		}
		p.attachments = append(p.attachments, attachment{name: decodeWords(name), contentType: ct})
		return nil
	}
	var target *string
	switch {
	case mediaType == "text/plain" && p.text == "":
		target = &p.text
	case mediaType == "text/html" && p.html == "":
		target = &p.html
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("%s body: %w", mediaType, err)
	}
	if target != nil {
		// Lines end in CRLF on the wire; record them as Go text.
		*target = strings.ReplaceAll(string(b), "\r\n", "\n")
	}
	return nil
}

func transferDecoder(encoding string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r) // skips CR and LF
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

func decodeWords(s string) string {
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// decodeAddresses renders an address header for people: display names
// decoded, "Name <addr>" joined by ", ".
func decodeAddresses(h mail.Header, key string) string {
	list, err := h.AddressList(key)
	if err != nil {
		return decodeWords(h.Get(key))
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.Address
		if a.Name != "" {
			out[i] = a.Name + " <" + a.Address + ">"
		}
	}
	return strings.Join(out, ", ")
}
