package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/attendance"
	"github.com/gymhq/herald/channels/inapp"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/gateway"
	"github.com/gymhq/herald/gateway/jwtauth"
	"github.com/redis/go-redis/v9"
)

// setupFeeds makes the process's in-app feeds: on Redis when the fleet has
// it, else in memory (herald dev on one process); and, for a process that
// runs the gateway role, the gateway over them and over people's
// preferences (GET|PUT /v1/preferences, one-click unsubscribe), which
// setupPreferences makes for every role.
func (f *fleet) setupFeeds(rc redis.UniversalClient) error {
	cfg := f.cfg
	if rc != nil {
		f.feed = feed.NewRedis(rc, inapp.Limits(cfg))
		f.attendance = attendance.NewRedis(rc, "")
	} else {
		f.feed = feed.NewMemory(inapp.Limits(cfg))
		f.attendance = attendance.NewMemory()
	}
	preferences := f.setupPreferences(rc)
	if !cfg.Role.Runs(config.RoleGateway) {
		return nil
	}
	v, err := verifier(cfg.Gateway)
	if err != nil {
		return err
	}
	signer, err := unsubscribeSigner(cfg.Gateway)
	if err != nil {
		return err
	}
	f.gateway, err = gateway.New(gateway.Options{
		Feed: f.feed,
		Authenticate: func(r *http.Request) (string, time.Time, error) {
			tok, ok := jwtauth.FromRequest(r)
			if !ok {
				return "", time.Time{}, errors.New("no bearer token (Authorization: Bearer, or ?access_token=)")
			}
			c, err := v.Verify(tok, time.Now())
			return c.Subject, c.Expires, err
		},
		MaxConnections: cfg.Gateway.MaxConnections, MaxPerPerson: cfg.Gateway.MaxPerPerson,
		WriteTimeout: cfg.Gateway.WriteTimeout, Heartbeat: cfg.Gateway.Heartbeat,
		AllowedOrigins: cfg.Gateway.AllowedOrigins,
		Logger:         f.logger(), Registerer: f.metrics.Registry,
		Preferences: preferences, Templates: f.templates.Current, Unsubscribe: signer,
	})
	return err
}

// verifier checks the bearer tokens as the configuration says.
func verifier(g config.Gateway) (*jwtauth.Verifier, error) {
	if g.JWKSFile != "" {
		v, err := jwtauth.LoadRS256(g.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("HERALD_GATEWAY_JWKS_FILE: %w", err)
		}
		return v, nil
	}
	v, err := jwtauth.NewHS256([]byte(g.JWTSecret))
	if err != nil {
		return nil, fmt.Errorf("HERALD_GATEWAY_JWT_SECRET: %w", err)
	}
	return v, nil
}

// serveGateway listens on addr for the gateway's API. It returns once the
// listener is bound, so a bad address fails at start. The server has no
// write timeout (streams are long); each stream write has its own
// (HERALD_GATEWAY_WRITE_TIMEOUT).
func serveGateway(addr string, f *fleet) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Addr: ln.Addr().String(), Handler: f.gateway.Handler(),
		ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.logger().Error("gateway server stopped", zap.Error(err))
		}
	}()
	f.logger().Info("gateway listening", zap.String("addr", srv.Addr))
	return srv, nil
}

// runGatewayOnly is the gateway role alone: it needs Redis, not Kafka, so
// a Kafka outage never keeps a gateway from starting or serving.
func (f *fleet) runGatewayOnly(ctx context.Context) error {
	if f.redis != nil {
		f.waiting.Log = f.log
		if err := f.waiting.All(ctx, redisDependency(f.cfg, f.redis, f.redisCheck)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	f.log.Info("herald running", zap.String("role", string(f.cfg.Role)))
	f.runGateway(ctx)
	// Its streams are closed with the server, each told "shutdown".
	f.log.Info("stopping: the gateway's streams are told to reconnect; bye")
	return nil
}

// runGateway delivers feed changes to the gateway's streams until ctx
// ends; a failed subscription is retried.
func (f *fleet) runGateway(ctx context.Context) {
	for ctx.Err() == nil {
		if err := f.gateway.Run(ctx); err != nil && ctx.Err() == nil {
			f.logger().Warn("feed subscription failed; retrying", zap.Error(err))
			time.Sleep(time.Second)
		}
	}
}
