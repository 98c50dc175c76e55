package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/gymhq/herald/channels/sms"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/receipts"
)

// setupReceipts turns on delivery receipts for the channels whose provider
// reports them: SMS, when HERALD_TWILIO_STATUS_CALLBACK_URL is set. The SMS
// worker records each accepted message, Twilio's signed callbacks are
// served on this process's HTTP port, and a receipt that says the number
// is dead or unsubscribed suppresses it. The store is Redis when there is
// one (any sms pod may get the callback), in process otherwise.
func (f *fleet) setupReceipts(rc redis.UniversalClient) error {
	if f.senders[notification.SMS] == nil {
		return nil
	}
	public := f.cfg.Value(sms.StatusCallbackVar)
	if public == "" {
		return nil
	}
	var store receipts.Store = receipts.NewMemory()
	if rc != nil {
		store = receipts.NewRedis(rc, 0)
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
		Store: store, Suppressor: f.prot.list, Metrics: receipts.NewMetrics(f.metrics.Registry),
		Logger: f.logger().With(zap.String("role", "sms")), OnOutcome: rate.Observe,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", sms.StatusCallbackVar, err)
	}
	f.receipts = map[notification.Channel]receipts.Store{notification.SMS: store}
	f.routes = map[string]http.Handler{"POST " + receipts.TwilioPath: h}
	return nil
}
