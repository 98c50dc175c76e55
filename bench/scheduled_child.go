package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/pipeline"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/topics"
)

// SchedulerFlag is the hidden `herald bench` flag that turns the process
// into the scheduled scenario's measured scheduler: the herald-scheduler
// group applying the schedule topic to the Redis index, and the firing
// loop, as herald run wires them in the dispatcher role. It runs apart so
// that its peak RSS is the scheduler's alone: the Kafka cluster holding
// the million schedule records lives in the infrastructure process.
const SchedulerFlag = "--scheduler-process"

// schedulerSpec is what the parent tells the scheduler process.
type schedulerSpec struct {
	Brokers  []string `json:"brokers"`
	RedisURL string   `json:"redis_url"`
	// Partitions is the schedule topic's partition count: the scheduler
	// says it is ready once the index holds every one (ready marks).
	Partitions int `json:"partitions"`
}

// schedulerReport is the scheduler process's last line.
type schedulerReport struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
}

// schedulerMain runs the scheduler until its stdin closes. It prints
// "ready" once its consumer runs and the index is whole, and its report
// when it has stopped. HERALD_BENCH_SCHEDULER_CPUPROFILE=FILE writes its
// CPU profile (go tool pprof herald FILE).
func schedulerMain(arg string) int {
	var spec schedulerSpec
	if err := json.Unmarshal([]byte(arg), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "herald bench %s: bad spec: %v\n", SchedulerFlag, err)
		return 2
	}
	if path := os.Getenv("HERALD_BENCH_SCHEDULER_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "herald bench %s: HERALD_BENCH_SCHEDULER_CPUPROFILE: %v\n", SchedulerFlag, err)
			return 2
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := runScheduler(spec); err != nil {
		fmt.Fprintf(os.Stderr, "herald bench %s: %v\n", SchedulerFlag, err)
		return 1
	}
	return 0
}

func runScheduler(spec schedulerSpec) error {
	cfg := config.Defaults()
	client, err := dedupe.Open(spec.RedisURL)
	if err != nil {
		return err
	}
	defer client.Close()
	idx := schedule.NewRedis(client, schedule.RedisOptions{})
	prod := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: spec.Brokers})
	defer prod.Close()
	common := benchCommon(prod)
	// As cmd/herald's newScheduler: the defaults of every setting, and the
	// topic scan that rebuilds a partition the index lacks.
	src := kafkarun.TopicSource{Config: kafkarun.ScanConfig{Brokers: spec.Brokers}, Topic: topics.Schedule}
	s, err := schedule.New(schedule.Config{
		Index: idx, Publisher: prod, Metrics: common.Metrics, Logger: nopLogger,
		Retention: cfg.Schedule.Retention, Tick: cfg.Schedule.Tick, Owner: "bench-scheduler",
		Partitions: src.Partitions, Scan: src.Read,
	})
	if err != nil {
		return err
	}
	st := pipeline.Schedule(common, s)
	c, err := startStage(common, st, kafkarun.ConsumerConfig{
		Brokers: spec.Brokers, MaxInFlight: cfg.MaxInFlight, // commit interval and group timings: startStage
	}, st.Handler, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = s.Run(ctx) }()
	stop := func() { cancel(); <-ran; _ = c.Stop() }

	deadline := time.Now().Add(time.Minute)
	for {
		missing, err := idx.Missing(ctx, spec.Partitions)
		if err == nil && len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("index not whole after a minute: missing %v, %v", missing, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
	stop()
	rep := schedulerReport{CPUSeconds: cpuTime().Seconds()}
	if rep.PeakRSSMB, err = peakRSS("self"); err != nil {
		return err
	}
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	return nil
}
