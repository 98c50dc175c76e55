package receipts

import (
	"bytes"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/notification"
)

// BouncePath is where herald takes SMTP bounces.
const BouncePath = "/v1/receipts/smtp"

// ProviderSMTP names SMTP relays in email receipts.
const ProviderSMTP = "smtp"

// BounceOptions configure the bounce endpoint.
type BounceOptions struct {
	// Token authenticates the sender of bounces: "Authorization: Bearer
	// <token>" (a mailbox's pipe script, an inbound-mail webhook).
	Token      string
	Store      Store
	Suppressor Suppressor
	Metrics    *Metrics
	Logger     *zap.Logger
	// MaxBody bounds one bounce message; DefaultMaxBounce when zero.
	MaxBody int64
	Clock   func() time.Time
}

// DefaultMaxBounce is the largest bounce accepted: a DSN with the
// original message's headers, not its attachments.
const DefaultMaxBounce = 1 << 20

// Bounces is the SMTP bounce endpoint, an http.Handler for POST
// BouncePath: the body is one bounce as mail (RFC 3464 multipart/report,
// message/rfc822 as a mailbox holds it). The bounced message is found by
// its Message-ID, which herald made from the notification id; each
// recipient's action becomes a receipt (failed → bounced, delivered →
// delivered, relayed → sent), and a 5.1.x failure suppresses the address.
//
// Answers: 200 recorded (or nothing to record: not ours, a delay), 400 not
// a DSN, 401 without the token, 413 too large, 500 when the store or the
// suppression list failed (send it again).
type Bounces struct{ opts BounceOptions }

// BounceHandler returns the endpoint.
func BounceHandler(o BounceOptions) (*Bounces, error) {
	if o.Token == "" || o.Store == nil {
		return nil, invalid("BounceOptions.Token and Store are required")
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBounce
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Bounces{opts: o}, nil
}

func (b *Bounces) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, result := b.serve(r)
	b.opts.Metrics.callback(ProviderSMTP, result)
	w.WriteHeader(status)
}

func (b *Bounces) serve(r *http.Request) (int, string) {
	log := b.opts.Logger
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(b.opts.Token)) != 1 {
		log.Warn("smtp bounce without the token")
		return http.StatusUnauthorized, ResultForged
	}
	body, status, result := readPost(r, b.opts.MaxBody)
	if status != 0 {
		return status, result
	}
	dsn, err := ParseDSN(bytes.NewReader(body))
	if err != nil {
		log.Warn("smtp bounce is not a delivery status notification", zap.Error(err))
		return http.StatusBadRequest, ResultMalformed
	}
	pmid := dsn.OriginalMessageID
	if !strings.HasPrefix(pmid, "<") {
		pmid = "<" + pmid + ">"
	}
	ctx := r.Context()
	result = ResultUnknown
	for _, rcpt := range dsn.Recipients {
		st, ok := rcpt.Receipt()
		if !ok {
			continue // delayed: not an answer yet
		}
		rc, changed, err := b.opts.Store.Record(ctx, pmid, st, rcpt.Status, b.opts.Clock())
		if err != nil {
			log.Error("smtp bounce not recorded", zap.Error(err))
			return http.StatusInternalServerError, ResultError
		}
		if rc.NotificationID == "" {
			log.Info("smtp bounce for a message herald has no receipt of", zap.String("message_id", pmid))
			continue
		}
		result = ResultUnchanged
		if changed {
			result = ResultRecorded
			b.opts.Metrics.receipt(rc)
		}
		if reason := rcpt.SuppressReason(); reason != "" && b.opts.Suppressor != nil {
			to := rcpt.FinalRecipient
			if err := b.opts.Suppressor.Add(ctx, string(notification.Email), to, string(reason)); err != nil {
				log.Error("bounced address not suppressed", zap.Error(err))
				return http.StatusInternalServerError, ResultError
			}
			log.Info("bounced address suppressed", zap.String("to", address.MaskEmail(to)), zap.String("status", rcpt.Status))
		}
	}
	return http.StatusOK, result
}
