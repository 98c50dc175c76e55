package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/httperr"
	"github.com/gymhq/herald/failure"
)

// ReasonEndpointGone is a 410 Gone: the receiver retired the endpoint. It
// is permanent and suppresses the subscription until an operator lifts it
// (herald suppressions remove).
var ReasonEndpointGone = failure.Register("endpoint_gone")

// Options configure a Sender.
type Options struct {
	// Subscriptions returns the serving tree's subscriptions, per send
	// (they are hot-reloaded with the templates).
	Subscriptions func() *Subscriptions
	// Timeout bounds one delivery, answer included. Default 10s.
	Timeout time.Duration
	// AllowPrivateNetworks lets endpoints resolve to loopback, link-local
	// and private addresses (tests, on-premises receivers).
	AllowPrivateNetworks bool
	// Now is the clock of webhook-timestamp; time.Now when nil.
	Now func() time.Time
}

// Sender delivers webhooks. Safe for concurrent use.
type Sender struct {
	opts   Options
	client *http.Client
}

var _ channels.Sender = (*Sender)(nil)

// maxAnswer is how much of an answer is read (and then discarded): enough
// to reuse the connection, never a receiver's whole page.
const maxAnswer = 64 << 10

// New returns a Sender.
func New(o Options) (*Sender, error) {
	if o.Subscriptions == nil {
		return nil, errors.New("webhook: Options.Subscriptions is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	tr := httperr.PooledTransport(8)
	tr.Proxy = nil // a proxy would dial the endpoint where the check below cannot see it
	d := &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}
	if !o.AllowPrivateNetworks {
		d.Control = refusePrivate
	}
	tr.DialContext = d.DialContext
	client := &http.Client{
		Transport: tr,
		Timeout:   o.Timeout,
		// Never follow a redirect: it could point anywhere, including
		// inside the network, and the signature is for this endpoint.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Sender{opts: o, client: client}, nil
}

// errDenied marks a dial refused by refusePrivate.
var errDenied = errors.New("destination is a loopback, link-local, private or otherwise internal address; HERALD_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true allows it")

// refusePrivate runs after DNS, on the address about to be dialled.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return errDenied
	}
	if internal(ap.Addr().Unmap()) {
		return errDenied
	}
	return nil
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func internal(a netip.Addr) bool {
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || cgnat.Contains(a) ||
		!a.IsValid()
}

type payload struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// Send delivers m to the subscription m.To names.
func (s *Sender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	sub := s.opts.Subscriptions().Lookup(m.To)
	if sub == nil {
		return channels.Receipt{}, failure.Errorf(failure.Permanent, failure.ReasonInvalidAddress,
			"no webhook subscription %q in the serving %s", m.To, FileName)
	}
	if !json.Valid([]byte(m.Text)) || len(m.Text) == 0 || m.Text[0] != '{' {
		return channels.Receipt{}, failure.Errorf(failure.Permanent, failure.ReasonRender, "webhook data is not a JSON object")
	}
	ts := m.EventTime
	if ts == "" {
		ts = s.opts.Now().UTC().Format(time.RFC3339)
	}
	body, err := json.Marshal(payload{Type: m.EventType, Timestamp: ts, Data: json.RawMessage(m.Text)})
	if err != nil {
		return channels.Receipt{}, failure.Perm(failure.ReasonRender, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return channels.Receipt{}, failure.Perm(failure.ReasonInvalidAddress, err)
	}
	now := s.opts.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "herald-webhooks/1")
	req.Header.Set("webhook-id", m.NotificationID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(m.NotificationID, now, body, sub.Keys))
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, errDenied) {
			return channels.Receipt{}, failure.Perm(failure.ReasonDestinationDenied, fmt.Errorf("webhook %s: %w", sub.ID, errDenied))
		}
		return channels.Receipt{}, httperr.Transport(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer)) //nolint:errcheck // only to reuse the connection
	switch st := resp.StatusCode; {
	case st >= 200 && st < 300:
		return channels.Receipt{ProviderMessageID: m.NotificationID}, nil
	case st == http.StatusGone:
		return channels.Receipt{}, httperr.New(failure.Permanent, ReasonEndpointGone, st, "", fmt.Errorf("webhook %s: the endpoint is gone", sub.ID))
	case st >= 300 && st < 400:
		return channels.Receipt{}, httperr.New(failure.Permanent, failure.ReasonRejected, st, "",
			fmt.Errorf("webhook %s: answered with a redirect to %q, which herald never follows", sub.ID, resp.Header.Get("Location")))
	default:
		return channels.Receipt{}, httperr.Classify(st, resp.Header.Get("Retry-After"), fmt.Errorf("webhook %s", sub.ID))
	}
}

// Endpoints are the serving subscriptions, as protect.Keyed counts them:
// one circuit breaker each.
func (s *Sender) Endpoints() Endpoints { return Endpoints{s.opts.Subscriptions} }

// Endpoints are a Sender's subscriptions as they are at each call (they
// are hot-reloaded).
type Endpoints struct{ subs func() *Subscriptions }

// Len is how many subscriptions there are.
func (e Endpoints) Len() int { return e.subs().Len() }

// Has reports whether id is one of them.
func (e Endpoints) Has(id string) bool { return e.subs().Lookup(id) != nil }

// Close releases idle connections.
func (s *Sender) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
