package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
	"github.com/gymhq/herald/tracing"
	"github.com/gymhq/herald/worker"
)

// fleet is every role one process runs, wired from concrete parts. It is
// the only place where Kafka, Redis, templates and providers meet.
type fleet struct {
	cfg       *config.Config
	log       *zap.Logger
	metrics   *obs.Metrics
	templates *templates.Live
	tracing   *tracing.Tracing
	store     dedupe.Store
	senders   map[notification.Channel]channels.Sender
	// ping checks the idempotency store for /readyz; nil means always ready.
	ping func(context.Context) error
	// prot is suppressions and provider protection (protect.go).
	prot protection

	mu        sync.Mutex
	consumers []*kafkarun.Consumer
	live      liveness // /healthz; see health.go
}

// roles returns the roles cfg.Role runs, dispatcher first.
func roles(r config.Role) []config.Role {
	if r == config.RoleAll {
		return []config.Role{config.RoleDispatcher, config.RoleEmail, config.RoleSMS, config.RolePush}
	}
	return []config.Role{r}
}

func ownerID(instance string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return instance + "-" + hex.EncodeToString(b)
}

// run creates herald's topics, starts a consumer per role and blocks until
// ctx ends and every consumer has drained, committed and left its group.
func (f *fleet) run(ctx context.Context) error {
	cfg := f.cfg
	conn, err := kafkaConnection(cfg)
	if err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	var specs []kafkarun.TopicSpec
	for _, t := range topics.Owned() {
		specs = append(specs, kafkarun.TopicSpec{Name: t, Partitions: cfg.TopicPartitions, Replication: cfg.TopicReplication})
	}
	err = checkKafka(tctx, cfg, conn)
	if err == nil {
		err = kafkarun.EnsureTopics(tctx, cfg.KafkaBrokers, conn.Transport, specs)
	}
	cancel()
	if err != nil {
		return err
	}

	producer := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: cfg.KafkaBrokers, Transport: conn.Transport})
	defer producer.Close()
	pub := f.tracing.Publisher(producer)
	owner := ownerID(cfg.InstanceID)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, role := range roles(cfg.Role) {
		group, topicList, handler, err := f.stage(role, pub, owner)
		if err != nil {
			return err
		}
		handler = f.track(group, topicList, handler)
		c, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{
			Brokers: cfg.KafkaBrokers, GroupID: group, Topics: topicList, Dialer: conn.Dialer,
			MaxInFlight: cfg.MaxInFlight, CommitInterval: cfg.CommitInterval,
			DrainTimeout: cfg.ShutdownTimeout, SessionTimeout: cfg.SessionTimeout,
			RebalanceTimeout: cfg.RebalanceTimeout, HeartbeatInterval: cfg.HeartbeatInterval,
			Logger:   f.log.With(zap.String("role", string(role))),
			Observer: f.live.observe(group, observer{m: f.metrics, group: group}),
			Gate:     f.live.gate(group, f.gate(role)),
		}, handler)
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.consumers = append(f.consumers, c)
		f.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", role, err)
			}
		}()
	}
	go f.watchLag(ctx, conn.Transport)
	f.log.Info("herald running", zap.String("role", string(cfg.Role)), zap.String("owner", owner))
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(ch <-chan error) []error {
	var out []error
	for e := range ch {
		out = append(out, e)
	}
	return out
}

// stage builds the handler for one role: the stage order for a channel is
// written out in worker.Handle, for events in dispatcher.Handle.
func (f *fleet) stage(role config.Role, pub queue.Publisher, owner string) (group string, topicList []string, h queue.Handler, err error) {
	if role == config.RoleDispatcher {
		d := &dispatcher.Dispatcher{
			Planner:   &dispatcher.Planner{Templates: f.templates, Now: time.Now, SMS: f.cfg.SMSPolicy()},
			Publisher: pub, Logger: f.log.With(zap.String("role", "dispatcher")), Metrics: f.metrics,
		}
		return topics.GroupDispatch, []string{f.cfg.EventsTopic}, f.tracing.Handler("dispatch", d.Handle), nil
	}
	ch := notification.Channel(role)
	sender := f.senders[ch]
	if sender == nil {
		return "", nil, nil, fmt.Errorf("no sender for channel %s", ch)
	}
	sender = f.tracing.Sender(string(ch), sender)
	w, err := worker.New(worker.Config{
		Channel: ch, Sender: sender, Renderer: f.templates, Store: f.store, Publisher: pub, Owner: owner, Suppressions: f.prot.list, Limiter: f.limiter(ch),
		Lease: f.cfg.IdempotencyLease, SendTimeout: f.cfg.SendTimeout,
		MaxAttempts: f.cfg.RetryMaxAttempts, MaxAge: f.cfg.RetryMaxAge,
		Logger: f.log.With(zap.String("role", string(role))), Metrics: f.metrics,
	})
	if err != nil {
		return "", nil, nil, err
	}
	return topics.Group(ch), []string{topics.Channel(ch), topics.Retry(ch)}, f.tracing.Handler("deliver "+string(ch), w.Handle), nil
}

// ready reports whether every consumer holds a generation and the
// idempotency store answers.
func (f *fleet) ready(ctx context.Context) error {
	f.mu.Lock()
	cs := append([]*kafkarun.Consumer(nil), f.consumers...)
	f.mu.Unlock()
	if len(cs) == 0 {
		return errors.New("consumers not started")
	}
	for _, c := range cs {
		if !c.Joined() {
			return errors.New("not joined to its consumer group")
		}
	}
	if f.ping != nil {
		if err := f.ping(ctx); err != nil {
			return fmt.Errorf("idempotency store: %w", err)
		}
	}
	return nil
}

// observer feeds the runtime's progress into metrics.
type observer struct {
	m     *obs.Metrics
	group string
}

func (o observer) Assigned(string, int) {}
func (o observer) Revoked(string, int)  {}
func (o observer) Committed(topic string, partition int, offset int64) {
	o.m.Committed.WithLabelValues(o.group, topic, fmt.Sprint(partition)).Set(float64(offset))
}
func (o observer) InFlight(delta int) { o.m.InFlight.WithLabelValues(o.group).Add(float64(delta)) }
