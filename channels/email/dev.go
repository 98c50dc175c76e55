package email

import (
	"crypto/tls"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/sinks/smtpsink"
)

// dev runs an in-process SMTP server with a self-signed certificate
// (STARTTLS mandatory, as production) for herald dev and the fleet tests.
func dev(o channels.DevOptions) (*channels.DevFake, error) {
	srvTLS, pool, err := smtpsink.SelfSignedTLS()
	if err != nil {
		return nil, err
	}
	sink, err := smtpsink.Start(o.Outbox, smtpsink.Options{TLS: srvTLS})
	if err != nil {
		return nil, err
	}
	c := o.Config
	c.SMTPAddr, c.SMTPTLS, c.EmailFrom = sink.Addr(), config.SMTPTLSMandatory, "Herald Gym <bookings@herald.dev>"
	return &channels.DevFake{
		Fake:  sink,
		TLS:   &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
		Close: func() { sink.Close() },
	}, nil
}
