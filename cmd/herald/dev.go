package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/pipeline"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/fcmfake"
	"github.com/gymhq/herald/sinks/smtpsink"
	"github.com/gymhq/herald/sinks/twiliofake"
	"github.com/gymhq/herald/topics"
	"github.com/gymhq/herald/tracing"
)

// devOptions configure the embedded environment.
type devOptions struct {
	KafkaAddr  string // in-process cluster's listen address
	Partitions int
	// RedisURL, when set, uses a real Redis for idempotency; otherwise an
	// in-memory store (fine for one process, said plainly at start).
	RedisURL string
	// Keep is how many deliveries the outbox keeps (0 = all).
	Keep int
	Log  *zap.Logger
	// Tracing, when set, replaces tracing from the OTEL_* environment.
	Tracing *tracing.Tracing
	// TemplatesDir, when set, is served instead of the built-in templates
	// and reloaded when it changes (HERALD_TEMPLATES_DIR).
	TemplatesDir string
	// CallbackBase, when set, is the base URL of the dev HTTP server, where
	// providers' callbacks are served: the Twilio fake then posts signed
	// status callbacks for every SMS (sent, then delivered or its scripted
	// failure) and herald records them (HERALD_TWILIO_STATUS_CALLBACK_URL).
	CallbackBase string
	// Settings are channel settings to set (config.Config.SetValue), as
	// an operator would in the environment.
	Settings map[string]string
}

// devTweak, when set, changes every devEnv's configuration before its
// own Settings: the tests' exactly-once workloads turn frequency caps off
// here (TestMain), since their few simulated people would hit every cap
// by design. herald dev leaves it nil.
var devTweak func(*config.Config)

// devEnv is the whole fleet on embedded parts: an in-process Kafka cluster,
// every channel's stand-in provider recording into one outbox, and every
// role.
type devEnv struct {
	cluster *kafkatest.Cluster
	outbox  *sinks.Outbox
	// fakes are the channels' stand-ins (channels.DevFake.Fake); the
	// shipped ones are also typed, for tests that script their failures.
	fakes map[notification.Channel]any
	// fakeRoutes are the stand-ins' receivers on the dev HTTP server.
	fakeRoutes []route
	smtp       *smtpsink.Sink
	twilio     *twiliofake.Fake
	fcm        *fcmfake.Fake
	cfg        *config.Config
	fleet      *fleet
	prod       *kafkarun.Producer
	store      string
	simOnce    sync.Once
	sim        *lockedSim

	closers []func()
}

func (e *devEnv) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

func (e *devEnv) brokers() []string { return e.cfg.KafkaBrokers }

// publishEvent produces a booking event as the booking service would.
func (e *devEnv) publishEvent(ctx context.Context, key, value []byte) error {
	return e.prod.Publish(ctx, queue.Message{Topic: e.cfg.EventsTopic, Key: key, Value: value})
}

// topicRequests watches the dev broker's metadata requests, which create
// the topics they name. A name Kafka would refuse (config.ValidKafkaName)
// is not created, nor one of Kafka's own __ names: the request is answered
// as for a missing topic. A topic the dev fleet does not read, created or
// not, is logged once, so that a mistyped events topic is seen rather than
// created and ignored in silence.
func topicRequests(c *kafkatest.Cluster, log *zap.Logger) func(kmsg.Request) (kmsg.Response, error, bool) {
	events := config.Defaults().EventsTopic
	known := map[string]bool{events: true}
	for _, t := range topics.Owned() {
		known[t] = true
	}
	var mu sync.Mutex
	return func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		req := r.(*kmsg.MetadataRequest)
		for _, t := range req.Topics {
			if t.Topic == nil {
				continue
			}
			name := *t.Topic
			invalid, kafkas := config.ValidKafkaName(name), strings.HasPrefix(name, "__")
			if invalid != nil || kafkas {
				req.AllowAutoTopicCreation = false // answered as a missing topic
			}
			if known[name] || name == "__consumer_offsets" || name == "__transaction_state" {
				continue // Kafka's own: clients may ask for them
			}
			known[name] = true
			switch {
			case invalid != nil:
				log.Warn("a client asked for a topic Kafka refuses; not created", zap.Error(invalid))
			case kafkas:
				log.Warn("a client asked for a topic whose name begins with __, which Kafka keeps for its own topics; not created",
					zap.String("topic", name), zap.String("events_topic", events))
			default:
				log.Warn("a client asked for a topic herald dev's fleet does not read; created if it was missing",
					zap.String("topic", name), zap.String("events_topic", events))
			}
		}
		return nil, nil, false
	}
}

func newDevEnv(o devOptions) (_ *devEnv, err error) {
	e := &devEnv{outbox: sinks.NewOutbox(o.Keep)}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if o.Partitions <= 0 {
		o.Partitions = 3
	}

	// Kafka: kfake listens on 127.0.0.1:<port>; honour the requested port.
	_, portStr, err := net.SplitHostPort(o.KafkaAddr)
	if err != nil {
		return nil, fmt.Errorf("--kafka-addr: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--kafka-addr: port %q: %w", portStr, err)
	}
	// A topic a client asks for is created, as Apache Kafka's default
	// auto.create.topics.enable does: kcat producing to a topic of its
	// own, or a herald run with another HERALD_EVENTS_TOPIC, finds it
	// rather than failing for want of an admin client.
	e.cluster, err = kafkatest.New(kfake.Ports(port), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(o.Partitions))
	if err != nil {
		return nil, fmt.Errorf("--kafka-addr %s: %w", o.KafkaAddr, err)
	}
	e.closers = append(e.closers, e.cluster.Close)
	e.cluster.ControlKey(int16(kmsg.Metadata), topicRequests(e.cluster, o.Log))

	cfg := config.Defaults()
	cfg.Role = config.RoleAll
	cfg.KafkaBrokers = e.cluster.Brokers()
	cfg.TopicPartitions, cfg.TopicReplication = o.Partitions, 1
	cfg.SessionTimeout, cfg.RebalanceTimeout, cfg.HeartbeatInterval = 6*time.Second, 6*time.Second, 500*time.Millisecond
	cfg.CommitInterval = 100 * time.Millisecond
	cfg.ShutdownTimeout = 20 * time.Second
	cfg.InstanceID = "dev"
	cfg.RedisURL = o.RedisURL
	if cfg.RedisURL == "" {
		// Satisfies validation only: the in-memory store below is used
		// instead, and nothing dials this address.
		cfg.RedisURL = "redis://127.0.0.1:6379/0"
	}
	cfg.TemplatesDir, cfg.TemplatesReloadInterval = o.TemplatesDir, time.Second
	// The gateway's key lives as long as herald dev: the dev pages get
	// tokens minted with it (GET /dev/token).
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	cfg.Gateway.JWTSecret = hex.EncodeToString(key)
	// One-click unsubscribe links in the outbox's emails point at the dev
	// server's own gateway, when its address is known.
	if o.CallbackBase != "" {
		ukey := make([]byte, 32)
		if _, err := rand.Read(ukey); err != nil {
			return nil, err
		}
		cfg.Gateway.UnsubscribeSecret, cfg.Gateway.PublicURL = hex.EncodeToString(ukey), o.CallbackBase
		if cfg.Gateway.UnsubscribeTTL == 0 {
			cfg.Gateway.UnsubscribeTTL = 60 * 24 * time.Hour
		}
	}

	// Providers: each channel's own stand-in (its descriptor's Dev),
	// pointed at by cfg.
	dir, err := devDir(os.TempDir())
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { os.RemoveAll(dir) })
	e.fakes = map[notification.Channel]any{}
	trust := map[notification.Channel]*tls.Config{}
	for _, d := range channels.All() {
		fake, err := d.Dev(channels.DevOptions{Outbox: e.outbox, Config: cfg, Dir: dir, CallbackBase: o.CallbackBase})
		if err != nil {
			return nil, fmt.Errorf("%s stand-in: %w", d.Name, err)
		}
		if fake.Close != nil {
			e.closers = append(e.closers, fake.Close)
		}
		e.fakes[d.Name], trust[d.Name] = fake.Fake, fake.TLS
		for pattern, h := range fake.Routes {
			e.fakeRoutes = append(e.fakeRoutes, route{pattern, h})
		}
	}
	e.smtp, _ = e.fakes[notification.Email].(*smtpsink.Sink)
	e.twilio, _ = e.fakes[notification.SMS].(*twiliofake.Fake)
	e.fcm, _ = e.fakes[notification.Push].(*fcmfake.Fake)
	if devTweak != nil {
		devTweak(cfg)
	}
	for k, v := range o.Settings {
		cfg.SetValue(k, v)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dev configuration: %w", err)
	}
	e.cfg = cfg

	var store dedupe.Store
	if o.RedisURL == "" {
		store = dedupe.NewMemory(dedupe.Options{Retention: cfg.IdempotencyRetention})
		e.store = "in-memory (HERALD_REDIS_URL not set; keys are lost when herald dev stops)"
	} else {
		e.store = "redis " + o.RedisURL
	}
	f, closeFleet, err := buildFleet(cfg, o.Log, fleetOptions{
		store:   store,
		tls:     trust,
		tracing: o.Tracing,
	})
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, closeFleet)
	e.fleet = f
	e.recordFeeds()
	for ch, s := range f.senders {
		// Innermost, next to the provider client: the stages wrap it
		// (pipeline.Deliver) when the fleet runs.
		id := identifying{Sender: s, ch: string(ch), outbox: e.outbox}
		if g, ok := s.(pipeline.Guard); ok {
			f.senders[ch] = identifyingGuard{identifying: id, guard: g} // still the channel's gate
		} else {
			f.senders[ch] = id
		}
	}

	// herald never creates the events topic in production; in dev we play
	// the booking service, which owns it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := kafkarun.EnsureTopics(ctx, cfg.KafkaBrokers, nil, []kafkarun.TopicSpec{{Name: cfg.EventsTopic, Partitions: o.Partitions, Replication: 1}}); err != nil {
		return nil, err
	}
	e.prod = kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: cfg.KafkaBrokers})
	e.closers = append(e.closers, func() { e.prod.Close() })
	return e, nil
}

// identifying tells the outbox which notification, of which event, each
// delivery the provider accepted was: the sinks see only what is on the
// wire, which for an SMS is the number and the text.
type identifying struct {
	channels.Sender
	ch     string
	outbox *sinks.Outbox
}

func (s identifying) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	r, err := s.Sender.Send(ctx, m)
	if err == nil {
		s.outbox.Identify(s.ch, r.ProviderMessageID, m.NotificationID, m.EventID)
	}
	return r, err
}

// identifyingGuard is identifying around a sender that is also its
// channel's gate (several providers, channels/failover).
type identifyingGuard struct {
	identifying
	guard pipeline.Guard
}

func (g identifyingGuard) Wait(ctx context.Context) error { return g.guard.Wait(ctx) }

func (g identifyingGuard) Passing() bool {
	p, ok := g.guard.(interface{ Passing() bool })
	return ok && p.Passing()
}

// devIgnoredEnv names the HERALD_* variables set in env that herald dev
// does not read (an outside tester set HERALD_EVENTS_TOPIC and got no hint).
func devIgnoredEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "HERALD_") && name != "HERALD_REDIS_URL" && name != "HERALD_TEMPLATES_DIR" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// cmdDev is `herald dev`.
func cmdDev(args []string) int {
	fs := flag.NewFlagSet("herald dev", flag.ContinueOnError)
	kafkaAddr := fs.String("kafka-addr", "127.0.0.1:9092", "listen address of the in-process Kafka cluster (any Kafka client can produce to it)")
	httpAddr := fs.String("http-addr", "127.0.0.1:8025", "outbox page, /metrics, /healthz and /readyz")
	rate := fs.Float64("simulate-rate", 1, "booking simulator events per second; 0 = off")
	partitions := fs.Int("partitions", 3, "partitions of every topic")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	templatesDir := fs.String("templates-dir", os.Getenv("HERALD_TEMPLATES_DIR"), "template tree to serve instead of the built-in one; reloaded when a file changes (default $HERALD_TEMPLATES_DIR)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log, err := obs.NewLogger(*logLevel, "console")
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald dev: --log-level: %v\n", err)
		return 2
	}
	routeRedisLogs(log)
	if ignored := devIgnoredEnv(os.Environ()); len(ignored) > 0 {
		log.Warn("herald dev runs on herald's defaults and reads only HERALD_REDIS_URL and HERALD_TEMPLATES_DIR; these are ignored",
			zap.Strings("ignored", ignored))
	}
	env, err := newDevEnv(devOptions{KafkaAddr: *kafkaAddr, Partitions: *partitions, RedisURL: os.Getenv("HERALD_REDIS_URL"), Keep: 500, Log: log, TemplatesDir: *templatesDir,
		CallbackBase: devCallbackBase(*httpAddr)})
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald dev: %v\n", err)
		return 1
	}
	defer env.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := serveHTTP(*httpAddr, env.fleet, env.routes, localOnly(*httpAddr))
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald dev: --http-addr %s: %v\n", *httpAddr, err)
		return 1
	}
	defer srv.Close()

	fmt.Fprintf(os.Stderr, `
herald dev is up
  outbox       http://%s/   (as JSON: http://%[1]s/api/outbox)
  templates    http://%[1]s/templates/
  member app   http://%[1]s/app/?person=mem_0000
  front desk   http://%[1]s/dashboard/?person=desk_shoreditch
  gateway      http://%[1]s/v1/feed   (tokens: http://%[1]s/dev/token?sub=<person id>)
  kafka        %s   (topic %s; produce CloudEvents JSON with any client)
  idempotency  %s
  simulator    %g events/s
  metrics      http://%s/metrics
Ctrl-C drains and stops.

`, *httpAddr, env.brokers()[0], env.cfg.EventsTopic, env.store, *rate, *httpAddr)

	if *rate > 0 {
		go simulate(ctx, env, *rate, log)
	}
	if err := env.fleet.run(ctx); err != nil {
		log.Error("fleet stopped with an error", zap.Error(err))
		return 1
	}
	return 0
}

// simulator returns herald dev's booking generator, shared by the
// simulator and the page's buttons, so that a cancellation cancels a
// booking made earlier and the dashboard's figures add up.
func (e *devEnv) simulator() *lockedSim {
	e.simOnce.Do(func() {
		e.sim = &lockedSim{g: sim.New(sim.Options{Seed: uint64(time.Now().UnixNano()), Prefix: strconv.FormatInt(time.Now().Unix()%100000, 36), Bookings: true})}
	})
	return e.sim
}

// lockedSim is a sim.Generator safe for concurrent use.
type lockedSim struct {
	mu sync.Mutex
	g  *sim.Generator
}

func (l *lockedSim) Next() sim.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.g.Next()
}

func (l *lockedSim) MakeFor(t, member string) sim.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.g.MakeFor(t, member)
}

// simulate produces generated booking events at rate per second.
func simulate(ctx context.Context, env *devEnv, rate float64, log *zap.Logger) {
	g := env.simulator()
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ev := g.Next()
			if err := env.publishEvent(ctx, ev.Key, ev.Value); err != nil && ctx.Err() == nil {
				log.Warn("simulator publish failed", zap.Error(err))
			}
		}
	}
}

// devCallbackBase is the base URL of herald dev's HTTP server on addr, as
// the stand-ins on the same host reach it for providers' callbacks.
func devCallbackBase(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return "" // the port is not known before the server binds
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

type route struct {
	pattern string
	h       http.Handler
}

// devDir makes the directory for the stand-ins' files (the FCM service
// account) under tmp, named for this process: herald-dev-PID-*. It first
// removes those of herald dev processes that no longer run, since one
// that was killed could not remove its own.
func devDir(tmp string) (string, error) {
	matches, _ := filepath.Glob(filepath.Join(tmp, "herald-dev-*-*"))
	for _, m := range matches {
		p, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(m), "herald-dev-"), "-")
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 || pid == os.Getpid() || processRuns(pid) {
			continue
		}
		os.RemoveAll(m)
	}
	return os.MkdirTemp(tmp, fmt.Sprintf("herald-dev-%d-", os.Getpid()))
}

// processRuns reports whether process pid may still run: only a process
// known to be gone is not.
func processRuns(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || !errors.Is(err, os.ErrProcessDone)
}
