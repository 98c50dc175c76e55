package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/await"
	"github.com/gymhq/herald/internal/rpipe"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/tracing"
)

// cmdRun is `herald run`: a production worker for one role (or all).
func cmdRun(args []string) int {
	cfg, err := config.Load(args, os.Getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "herald: %v\n", err)
		return 2
	}
	log, err := obs.NewLogger(string(cfg.LogLevel), string(cfg.LogFormat))
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald: HERALD_LOG_LEVEL/HERALD_LOG_FORMAT: %v\n", err)
		return 2
	}
	defer log.Sync() //nolint:errcheck
	routeRedisLogs(log)

	f, closeAll, err := buildFleet(cfg, log, fleetOptions{})
	if err != nil {
		// Configuration that parsed but cannot be used (an SMTP From the
		// mail library rejects, an unreadable template directory): one line.
		fmt.Fprintf(os.Stderr, "herald: %v\n", err)
		return 2
	}
	defer closeAll()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := serveHTTP(cfg.HTTPAddr, f, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald: HERALD_HTTP_ADDR: %v\n", err)
		return 2
	}
	defer srv.Close()
	if f.gateway != nil {
		gw, err := serveGateway(cfg.Gateway.Addr, f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "herald: HERALD_GATEWAY_ADDR: %v\n", err)
			return 2
		}
		defer gw.Close()
	}
	log.Info("starting", zap.Any("config", cfg.Redacted()))
	if unknown := config.Unknown(os.Environ()); len(unknown) > 0 {
		log.Warn("environment variables herald does not read (a misspelling?); see docs/configuration.md", zap.Strings("variables", unknown))
	}
	if err := f.run(ctx); err != nil {
		log.Error("herald stopped with an error", zap.Error(err))
		var refused *await.RefusedError
		if errors.As(err, &refused) {
			// Kafka or Redis answered and refused the settings: bad
			// configuration, found late; one line, as at start.
			fmt.Fprintf(os.Stderr, "herald: %v\n", refused.Err)
			return 2
		}
		return 1
	}
	if f.started() {
		log.Info("drained and left the group; bye")
	}
	return 0
}

// pipesCloseWait bounds how long stopping waits for the Redis pipeline on
// the wire: a Redis that answers does so in milliseconds.
const pipesCloseWait = 2 * time.Second

// closePipes stops the shared pipelines, then the client. The pipeline on
// the wire may finish for up to wait; a Redis that has stopped answering
// would hold it through go-redis's read timeouts and retries (41 s with a
// frozen cluster, seen by an outside tester), past the drain deadline and a
// pod's grace period. Then closing the client cuts it off: its calls fail,
// and their records, not committed, are delivered again.
func closePipes(pipes *rpipe.Pipes, client io.Closer, wait time.Duration) {
	stopped := make(chan struct{})
	go func() { pipes.Close(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(wait):
		_ = client.Close()
		<-stopped
	}
	_ = client.Close() // a second Close only says it is closed
}

// fleetOptions override parts buildFleet would otherwise make from config;
// `herald dev` and the tests use them.
type fleetOptions struct {
	store   dedupe.Store                         // instead of Redis from HERALD_REDIS_URL
	tls     map[notification.Channel]*tls.Config // trust for the stand-ins' self-signed certificates
	tracing *tracing.Tracing                     // instead of OTLP from the OTEL_* environment
}

// buildFleet turns configuration into concrete parts. The returned func
// closes them.
func buildFleet(cfg *config.Config, log *zap.Logger, opts fleetOptions) (*fleet, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	tpl, err := loadTemplates(cfg.TemplatesDir)
	if err != nil {
		return nil, nil, err
	}
	f := &fleet{cfg: cfg, log: log, metrics: obs.NewMetrics(), templates: tpl, senders: map[notification.Channel]channels.Sender{}}
	if f.tracing, err = setupTracing(cfg, log, opts.tracing, &closers); err != nil {
		return nil, nil, err
	}

	needsStore := true // channel roles claim keys, the gateway reads feeds, the dispatcher schedules and reads preferences
	// rc is the Redis client, nil when the store is in process.
	var rc redis.UniversalClient
	if opts.store != nil {
		f.store = opts.store
		closers = append(closers, func() { opts.store.Close() })
	} else if needsStore {
		client, chk, err := openRedis(cfg, f.redisEvictionAllowed)
		if err != nil {
			return nil, nil, err
		}
		pipes := rpipe.New(client, 0) // shared with the suppression list (protectProviders)
		var store dedupe.Store = dedupe.NewRedis(client, dedupe.Options{Retention: cfg.IdempotencyRetention, Pipes: pipes})
		if cfg.Idempotency == config.IdempotencyOff {
			// Only the keys are off: suppression, rates, receipts, feeds
			// and attendance stay in Redis.
			log.Warn("HERALD_IDEMPOTENCY=off: sending without idempotency keys; every redelivery is sent again (measurement switch, never for production)")
			store = dedupe.Off{}
		}
		closers = append(closers, func() { store.Close(); closePipes(pipes, client, pipesCloseWait) })
		f.store, f.pipes = store, pipes
		f.ping = f.redisReady(chk)
		f.redis, f.redisAddr, f.redisCheck = client, redisAddress(cfg), chk
		rc = client
	}

	f.setupScheduling(rc)
	if err := f.setupFeeds(rc); err != nil {
		closeAll()
		return nil, nil, err
	}
	for _, r := range roles(cfg.Role) {
		d := channels.Lookup(notification.Channel(r))
		if d == nil {
			continue // the dispatcher
		}
		ch := d.Name
		s, err := d.New(channels.Build{Config: cfg, TLS: opts.tls[ch], Files: func() any { return tpl.Current().Files(ch) }, Feed: f.feed})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s channel: %w", r, err)
		}
		closers = append(closers, func() { s.Close() })
		f.senders[d.Name] = s
	}
	if err := f.protectProviders(rc); err != nil {
		closeAll()
		return nil, nil, err
	}
	if err := f.setupReceipts(rc); err != nil {
		closeAll()
		return nil, nil, err
	}
	if c, ok := f.prot.list.(io.Closer); ok { // before the Redis client it uses
		closers = append(closers, func() { c.Close() })
	}
	closers = append(closers, f.watchTemplates())
	return f, closeAll, nil
}
