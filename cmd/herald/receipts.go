package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/gymhq/herald/channels/email"
	"github.com/gymhq/herald/channels/sms"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/receipts"
)

// setupReceipts turns on delivery receipts for the channels whose provider
// reports them: SMS when HERALD_TWILIO_STATUS_CALLBACK_URL is set (Twilio's
// signed status callbacks), email when HERALD_SMTP_BOUNCE_TOKEN is (bounces
// posted to herald). The worker records each accepted message, the
// endpoints are served on this process's HTTP port, and a receipt that says
// the address is dead or unsubscribed suppresses it. The store is Redis when there is
// one (any sms pod may get the callback), in process otherwise.
func (f *fleet) setupReceipts(rc redis.UniversalClient) error {
	public := ""
	if f.senders[notification.SMS] != nil {
		public = f.cfg.Value(sms.StatusCallbackVar)
	}
	token := ""
	if f.senders[notification.Email] != nil {
		token = f.cfg.Value(email.BounceTokenVar)
	}
	if public == "" && token == "" {
		return nil
	}
	var store receipts.Store = receipts.NewMemory()
	if rc != nil {
		store = receipts.NewRedis(rc, 0)
	}
	metrics := receipts.NewMetrics(f.metrics.Registry)
	f.receipts = map[notification.Channel]receipts.Store{}
	f.routes = map[string]http.Handler{}
	if token != "" {
		h, err := receipts.BounceHandler(receipts.BounceOptions{
			Token: token, Store: store, Suppressor: f.prot.list, Metrics: metrics,
			Logger: f.logger().With(zap.String("role", "email")),
		})
		if err != nil {
			return fmt.Errorf("%s: %w", email.BounceTokenVar, err)
		}
		f.receipts[notification.Email] = store
		f.routes["POST "+receipts.BouncePath] = h
	}
	if public == "" {
		return nil
	}
	// Each provider's undelivered rate over the last minutes feeds
	// failover's choice when the channel has several (channels/failover);
	// it waits for enough final receipts to mean something.
	const minFinals = 20
	rate := receipts.NewUndeliveredRate(5*time.Minute, func(provider string, r float64, finals int) {
		if finals < minFinals {
			return
		}
		f.mu.Lock()
		g := f.prot.guards[notification.SMS]
		f.mu.Unlock()
		if fs, ok := unwrapFailover(g); ok {
			fs.SetUndeliveredRate(provider, r)
		}
	})
	h, err := receipts.TwilioHandler(receipts.TwilioOptions{
		PublicURL: public, AuthTokens: []string{f.cfg.TwilioAuthToken},
		Store: store, Suppressor: f.prot.list, Metrics: metrics,
		Logger: f.logger().With(zap.String("role", "sms")), OnOutcome: rate.Observe,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", sms.StatusCallbackVar, err)
	}
	f.receipts[notification.SMS] = store
	f.routes["POST "+receipts.TwilioPath] = h
	return nil
}
