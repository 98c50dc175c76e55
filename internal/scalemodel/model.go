// Package scalemodel is docs/scale.md's model: what a chain of a given size
// needs from herald (pods per role, partitions, Redis memory and shards,
// broker throughput, provider rates), computed from one table of inputs,
// each measured on the development machine or taken from a named published
// source. TestDocMatchesModel keeps the tables in docs/scale.md equal to
// what Compute makes of Default; change an input here and run
//
//	go test ./internal/scalemodel -run TestDocMatchesModel -update
//
// It also holds the helpers the packages' BenchmarkRedisBytesPerKey use
// to measure Redis memory per key (redismem.go).
package scalemodel

import (
	"fmt"
	"math"
	"strings"
)

// Input is one number of the model and where it comes from.
type Input struct {
	Name   string
	Value  float64
	Unit   string
	Source string
}

// Inputs are every number the model uses. Fields are named for what they
// are; Table lists them with their sources, in this order.
type Inputs struct {
	NotificationsPerDay, Members, PeakFactor Input

	NotificationsPerEvent, ShareEmail, ShareSMS, SharePush, ShareInapp, ShareHeld, SMSOfReminders Input

	CPUPipelineNow, CPUPipelineLive, CPUPipelineTarget, CPUWorker, CPUGateway, CPUSchedulerPerReminder Input
	PodCores, PodUtilisation, MinReplicas, Partitions                                                  Input
	OnlineShare, StreamsPerGateway                                                                     Input

	RecordBytes, EventBytes, ScheduleRecordBytes, Replication, Brokers, PartitionsPerBroker Input
	HeraldTopics, KafkaRetentionDays, ScheduleRetentionDays, BrokerMBps                     Input

	IdemBytesEmail, IdemBytesSMS, IdemBytesPush, IdemBytesInapp, IdemRetentionDays Input
	FeedItemBytes, FeedMaxAgeDays, FeedMaxItems                                    Input
	ScheduleBytes, ReminderLeadDays                                                Input
	ReceiptBytes, CapBytes, PrefsBytes                                             Input
	RedisReserve, RedisReplicas, RedisNodeGB, RedisShardCPU                        Input

	RedisCPUIdem, RedisCPUSuppress, RedisCPUPrefs, RedisCPUFeed, RedisCPUCaps, RedisCPUSchedule Input

	SMSSegments, TwilioLongCodeMPS, TwilioShortCodeMPS, TwilioIntlMPS, FCMPerMinute Input
}

// Default is the model of issue 14: a chain of 10 million members sending
// 100 million notifications a day.
var Default = Inputs{
	NotificationsPerDay: Input{"notifications a day", 100e6, "", "issue 14"},
	Members:             Input{"members", 10e6, "", "issue 14"},
	PeakFactor:          Input{"peak hour ÷ average hour", 3, "×", "estimate: classes cluster before work and after it, and reminders fire on the hour and half hour (see Peak)"},

	NotificationsPerEvent: Input{"notifications per event", 3.441, "", "measured: `BenchmarkNotificationMix`, shipped routing, 20,000 simulated events → 68,828 notifications (59,867 at once + 8,961 held reminders)"},
	ShareEmail:            Input{"share email", 0.2105, "", "measured: same run, 14,490"},
	ShareSMS:              Input{"share SMS", 0.1086, "", "measured: same run, 7,476 (1,696 of them reminders)"},
	SharePush:             Input{"share push", 0.3547, "", "measured: same run, 24,412 (7,265 of them reminders)"},
	ShareInapp:            Input{"share in-app", 0.3262, "", "measured: same run, 22,450 (webhooks: none, the shipped `webhooks.yaml` subscribes nobody)"},
	ShareHeld:             Input{"share held by the scheduler (reminders)", 0.1302, "", "measured: same run, 8,961"},
	SMSOfReminders:        Input{"reminders that go by SMS", 0.1893, "", "measured: same run, 1,696 of 8,961"},

	CPUPipelineNow:          Input{"herald CPU per notification, dispatcher + channel worker, draining a backlog", 83, "µs", "`pipeline` (herald's process only, the broker in a process of its own): BENCHMARKS.md's table of issue 14's twenty-eighth pass (77 and 80 in the twenty-seventh's, 58 in the twenty-sixth's); alternated runs move with the VM's hour from about 60 to 100; 360 before issue 14"},
	CPUPipelineLive:         Input{"the same under live traffic, at a pod's share of the peak", 418, "µs", "`herald bench --scenario latency --rate 500` (500 events/s into one process, about 1,400 notifications/s; the peak's 1,009 events/s over the 2 pods of each role): 376, 418 and 454 in three runs; 148–173 at the bench's 2,000/s, 745–837 at 125–250/s (docs/scale.md, Measurements). It counts the bench's producer of the events"},
	CPUPipelineTarget:       Input{"the backlog figure at issue 14's target", 60, "µs", "issue 14 target (≤ 60 µs), not reached yet"},
	CPUWorker:               Input{"channel worker CPU per notification (its own process), draining a backlog", 62, "µs", "`slow-provider` (its worker process): BENCHMARKS.md's table of issue 14's twenty-eighth pass (57 in the twenty-seventh's); 68–87 µs in the sixth pass's alternated runs"},
	CPUGateway:              Input{"gateway CPU per in-app notification pushed", 94.5, "µs", "BENCHMARKS.md `live-fanout` row of issue 14's twenty-eighth pass (83.0 and 92.5 in the twenty-seventh's, 69.5 in the twenty-sixth's; 100.5–112.5 before)"},
	CPUSchedulerPerReminder: Input{"scheduler CPU per reminder (index + fire + its booking's replace record)", 138.2, "µs", "BENCHMARKS.md `scheduled` row of issue 14's twenty-first pass: 28.2 µs indexing + 93.0 µs firing (218.5 before that pass); + 17.0 µs for the replace record every booking confirmation writes (the twenty-second pass's row, whose indexing and firing, which that pass did not change, read 32.5 + 89.5)"},
	PodCores:                Input{"cores per pod", 1, "", "deploy/base: every role's CPU limit is 1"},
	PodUtilisation:          Input{"target CPU use per pod at peak", 0.6, "", "choice: room to absorb a failed pod's partitions and a burst"},
	MinReplicas:             Input{"pods per role at least", 2, "", "deploy/base ScaledObjects' minReplicaCount"},
	Partitions:              Input{"partitions per topic (= maxReplicaCount)", 12, "", "HERALD_TOPIC_PARTITIONS default, deploy/base maxReplicaCount"},
	OnlineShare:             Input{"members with the app open at peak", 0.05, "", "estimate: no traffic data; the gateway rows scale with it"},
	StreamsPerGateway:       Input{"streams one gateway pod holds", 19800, "", "BENCHMARKS.md `live-fanout` row (6.3 KB each; 20,000 open files per process here)"},

	RecordBytes:           Input{"channel-topic record (key + value + headers)", 1124, "bytes", "measured: `BenchmarkNotificationMix`, the binary form the dispatcher writes (1,422 as JSON before issue 14)"},
	EventBytes:            Input{"booking event (key + value)", 784, "bytes", "measured: same run"},
	ScheduleRecordBytes:   Input{"schedule record", 1995, "bytes", "BENCHMARKS.md `scheduled` row"},
	Replication:           Input{"replication factor", 3, "", "HERALD_TOPIC_REPLICATION guidance (docs/configuration.md)"},
	Brokers:               Input{"brokers", 3, "", "the least that holds replication factor 3"},
	PartitionsPerBroker:   Input{"partitions per broker, guidance", 4000, "", "Apache Kafka KIP-578, 'Add configuration to limit number of partitions': 4,000 per broker, 200,000 per cluster"},
	HeraldTopics:          Input{"herald topics", 14, "", "docs/contracts.md §1: derived, live, 5 channel, 5 retry, schedule, dlq"},
	KafkaRetentionDays:    Input{"channel topics' retention", 7, "days", "Apache Kafka documentation, broker configuration: log.retention.hours defaults to 168"},
	ScheduleRetentionDays: Input{"schedule topic's retention", 30, "days", "HERALD_SCHEDULE_RETENTION"},
	BrokerMBps:            Input{"three brokers, replication 3, produced", 193, "MB/s", "LinkedIn Engineering, 'Benchmarking Apache Kafka: 2 Million Writes Per Second (On Three Cheap Machines)' (2014): three producers, 3× asynchronous replication, 1 GbE"},

	IdemBytesEmail:    Input{"idempotency key, email", 326.8, "bytes", "measured: `BenchmarkRedisBytesPerKey` in dedupe"},
	IdemBytesSMS:      Input{"idempotency key, SMS", 292.8, "bytes", "measured: same"},
	IdemBytesPush:     Input{"idempotency key, push", 325.0, "bytes", "measured: same, FCM project id ≤ 11 characters (573.0 with a longer one)"},
	IdemBytesInapp:    Input{"idempotency key, in-app", 292.8, "bytes", "estimate: the SMS figure; its provider id (a feed position) is shorter than a Twilio SID"},
	IdemRetentionDays: Input{"idempotency key lifetime", 7, "days", "HERALD_IDEMPOTENCY_RETENTION (168h)"},
	FeedItemBytes:     Input{"in-app feed item", 615.7, "bytes", "measured: `BenchmarkRedisBytesPerKey` in feed, 100 items per feed (772 at 20, 4,908 for a feed of one)"},
	FeedMaxAgeDays:    Input{"feed item lifetime", 30, "days", "HERALD_INAPP_FEED_MAX_AGE (720h)"},
	FeedMaxItems:      Input{"items per feed at most", 200, "", "HERALD_INAPP_FEED_MAX_ITEMS"},
	ScheduleBytes:     Input{"waiting reminder in the scheduler's index", 3270, "bytes", "BENCHMARKS.md `scheduled` row (with its event time since the eighteenth pass of issue 14)"},
	ReminderLeadDays:  Input{"days a reminder waits (booking to class − 2 h)", 2, "days", "estimate: no booking data; the scheduled bench used 2–7"},
	ReceiptBytes:      Input{"delivery receipt (when turned on)", 496.1, "bytes", "measured: `BenchmarkRedisBytesPerKey` in receipts, 7 days"},
	CapBytes:          Input{"frequency-cap window, one take", 219.2, "bytes", "measured: `BenchmarkRedisBytesPerKey` in caps"},
	PrefsBytes:        Input{"stored preferences, one person", 176.1, "bytes", "measured: `BenchmarkRedisBytesPerKey` in prefs (250.5 with quiet hours)"},
	RedisReserve:      Input{"memory kept free of data", 0.25, "", "Amazon ElastiCache documentation, 'Managing reserved memory': reserve 25% for replication buffers, fragmentation and fork copy-on-write"},
	RedisReplicas:     Input{"replicas per shard", 1, "", "choice; Redis Software documentation, 'Database memory limits': replication doubles memory"},
	RedisNodeGB:       Input{"memory of one Redis node", 64, "GB", "choice (a common node size); shards scale with it"},
	RedisShardCPU:     Input{"target use of a shard's one command thread", 0.5, "", "choice: Redis runs commands on one thread"},

	RedisCPUIdem:     Input{"Redis CPU per notification: claim + mark sent", 17.9, "µs", "measured: dedupe `BenchmarkRedisBytesPerKey` (16.4–20.1)"},
	RedisCPUSuppress: Input{"Redis CPU per suppression check", 2.2, "µs", "measured: suppress `BenchmarkRedisBytesPerKey/lookup`"},
	RedisCPUPrefs:    Input{"Redis CPU per preferences lookup", 2.8, "µs", "measured: prefs `BenchmarkRedisBytesPerKey/lookup` (one per recipient per event; counted per notification, an upper bound)"},
	RedisCPUFeed:     Input{"Redis CPU per feed append", 41.1, "µs", "measured: feed `BenchmarkRedisBytesPerKey`, 100 per feed"},
	RedisCPUCaps:     Input{"Redis CPU per cap take", 22.1, "µs", "measured: caps `BenchmarkRedisBytesPerKey`"},
	RedisCPUSchedule: Input{"Redis CPU per reminder (index + fire + its booking's replace record)", 128.5, "µs", "BENCHMARKS.md `scheduled` row of issue 14's twenty-first pass: 43.9 + 70.2 (201.3 before that pass); + 14.4 for the booking's replace record (the twenty-second pass's row)"},

	SMSSegments:        Input{"segments per SMS", 2, "", "estimate: the shipped routing allows 2–3 (UCS-2 names); Twilio's rates count segments"},
	TwilioLongCodeMPS:  Input{"Twilio, one US/Canada long code", 1, "segments/s", "Twilio's published outbound rates per sender type (support documentation on messages per second)"},
	TwilioShortCodeMPS: Input{"Twilio, one short code", 100, "segments/s", "same"},
	TwilioIntlMPS:      Input{"Twilio, one sender outside US/Canada", 10, "segments/s", "same"},
	FCMPerMinute:       Input{"FCM HTTP v1 quota per project", 600000, "messages/min", "Firebase documentation, 'Throttling and quotas'"},
}

// Table returns the inputs in order.
func (in Inputs) Table() []Input {
	return []Input{
		in.NotificationsPerDay, in.Members, in.PeakFactor,
		in.NotificationsPerEvent, in.ShareEmail, in.ShareSMS, in.SharePush, in.ShareInapp, in.ShareHeld, in.SMSOfReminders,
		in.CPUPipelineNow, in.CPUPipelineLive, in.CPUPipelineTarget, in.CPUWorker, in.CPUGateway, in.CPUSchedulerPerReminder,
		in.PodCores, in.PodUtilisation, in.MinReplicas, in.Partitions, in.OnlineShare, in.StreamsPerGateway,
		in.RecordBytes, in.EventBytes, in.ScheduleRecordBytes, in.Replication, in.Brokers, in.PartitionsPerBroker,
		in.HeraldTopics, in.KafkaRetentionDays, in.ScheduleRetentionDays, in.BrokerMBps,
		in.IdemBytesEmail, in.IdemBytesSMS, in.IdemBytesPush, in.IdemBytesInapp, in.IdemRetentionDays,
		in.FeedItemBytes, in.FeedMaxAgeDays, in.FeedMaxItems, in.ScheduleBytes, in.ReminderLeadDays,
		in.ReceiptBytes, in.CapBytes, in.PrefsBytes,
		in.RedisReserve, in.RedisReplicas, in.RedisNodeGB, in.RedisShardCPU,
		in.RedisCPUIdem, in.RedisCPUSuppress, in.RedisCPUPrefs, in.RedisCPUFeed, in.RedisCPUCaps, in.RedisCPUSchedule,
		in.SMSSegments, in.TwilioLongCodeMPS, in.TwilioShortCodeMPS, in.TwilioIntlMPS, in.FCMPerMinute,
	}
}

// Row is one result: what, the value for today's CPU, the value for the
// target CPU ("" when it does not depend on CPU), and how it is computed.
type Row struct {
	What, Now, Target, Formula string
}

const day = 86400.0

// Compute works the model out.
func Compute(in Inputs) []Row {
	v := func(i Input) float64 { return i.Value }
	var rows []Row
	add := func(what, now, target, formula string) { rows = append(rows, Row{what, now, target, formula}) }

	avg := v(in.NotificationsPerDay) / day
	peak := avg * v(in.PeakFactor)
	add("notifications/s, average", num(avg), "", "notifications a day ÷ 86,400")
	add("notifications/s, peak hour", num(peak), "", "average × peak factor")
	events := v(in.NotificationsPerDay) / v(in.NotificationsPerEvent)
	add("events a day", num(events), "", "notifications a day ÷ notifications per event")
	add("events/s, peak hour", num(peak/v(in.NotificationsPerEvent)), "", "peak ÷ notifications per event")
	share := map[string]float64{"email": v(in.ShareEmail), "sms": v(in.ShareSMS), "push": v(in.SharePush), "inapp": v(in.ShareInapp)}
	for _, ch := range []string{"email", "sms", "push", "inapp"} {
		add(ch+" notifications/s, peak", num(peak*share[ch]), "", "peak × share")
	}
	reminders := v(in.NotificationsPerDay) * v(in.ShareHeld)
	add("reminders a day", num(reminders), "", "notifications a day × share held")

	// Pods. The dispatcher's share of the pipeline CPU is what the channel
	// worker's own process does not account for. The peak hour is live
	// traffic, so pods at peak are sized with the CPU the pipeline spends
	// under it, both roles scaled by the live ÷ backlog ratio of the whole
	// pipeline; a group's ceiling is a backlog, all partitions busy.
	pods := func(rate, us float64) float64 {
		return math.Max(v(in.MinReplicas), math.Ceil(rate*us/1e6/(v(in.PodCores)*v(in.PodUtilisation))))
	}
	scale := v(in.CPUPipelineTarget) / v(in.CPUPipelineNow)
	live := v(in.CPUPipelineLive) / v(in.CPUPipelineNow)
	dispNow := v(in.CPUPipelineNow) - v(in.CPUWorker)
	add("dispatcher CPU per notification, draining a backlog", num(dispNow)+" µs", num(dispNow*scale)+" µs",
		"pipeline − channel worker (both herald's processes only); target: same proportion of the target")
	add("live traffic ÷ backlog, CPU per notification", num2(live)+"×", "", "pipeline CPU under live traffic ÷ draining a backlog; the target column assumes the same ratio")
	add("cores at peak, dispatcher + channel workers", num2(peak*v(in.CPUPipelineLive)/1e6), num2(peak*v(in.CPUPipelineLive)*scale/1e6), "peak × pipeline CPU under live traffic")
	dispRate := peak
	add("dispatcher pods (scheduler inside)",
		num(pods(dispRate, dispNow*live+v(in.ShareHeld)*v(in.CPUSchedulerPerReminder))), num(pods(dispRate, dispNow*live*scale+v(in.ShareHeld)*v(in.CPUSchedulerPerReminder)*scale)),
		"max(min pods, ⌈peak × (dispatcher CPU × live ratio + share held × scheduler CPU) ÷ (cores per pod × target use)⌉)")
	for _, ch := range []string{"email", "sms", "push", "inapp"} {
		add(ch+" worker pods", num(pods(peak*share[ch], v(in.CPUWorker)*live)), num(pods(peak*share[ch], v(in.CPUWorker)*live*scale)),
			"max(min pods, ⌈peak × share × worker CPU × live ratio ÷ (cores per pod × target use)⌉)")
	}
	streams := v(in.Members) * v(in.OnlineShare)
	gwCPU := pods(peak*share["inapp"], v(in.CPUGateway))
	gwStreams := math.Ceil(streams / v(in.StreamsPerGateway))
	add("gateway pods", num(math.Max(gwCPU, gwStreams)), "", fmt.Sprintf("max(by CPU %s, by streams ⌈%s open ÷ streams per pod⌉ = %s)", num(gwCPU), num(streams), num(gwStreams)))
	ceiling := v(in.Partitions) * v(in.PodCores) / (v(in.CPUWorker) / 1e6)
	add("one channel group's ceiling at maxReplicaCount", num(ceiling)+"/s", num(ceiling/scale)+"/s", "partitions × cores per pod ÷ worker CPU (all partitions busy, 100% CPU)")
	add("partitions per topic needed for CPU", num(math.Max(v(in.Partitions), pods(peak*v(in.SharePush), v(in.CPUWorker)*live))), "",
		"at least the most pods any channel group needs; HERALD_TOPIC_PARTITIONS and maxReplicaCount stay equal")
	totalPartitions := v(in.HeraldTopics) * v(in.Partitions) * v(in.Replication)
	add("partition replicas per broker", num(totalPartitions/v(in.Brokers)), "", fmt.Sprintf("herald topics × partitions × replication ÷ brokers; guidance ≤ %s", num(v(in.PartitionsPerBroker))))

	// Broker throughput.
	chBytes := v(in.NotificationsPerDay) * v(in.RecordBytes) // every notification, reminders too once fired
	schedBytes := reminders * v(in.ScheduleRecordBytes)      // done marks and cancel records are small and not counted
	evBytes := events * v(in.EventBytes)
	inPeak := (chBytes + schedBytes + evBytes) / day * v(in.PeakFactor)
	add("produced to Kafka at peak", mb(inPeak)+"/s", "", "(channel records + schedule records + events) a day ÷ 86,400 × peak factor")
	add("… as a share of the published three-broker figure", pct(inPeak/(v(in.BrokerMBps)*1e6)), "", "produced ÷ published MB/s")
	add("written by brokers at peak (with replicas)", mb(inPeak*v(in.Replication))+"/s", "", "produced × replication factor")
	add("Kafka disk, channel topics", gb(chBytes*v(in.KafkaRetentionDays)*v(in.Replication)), "", "channel bytes a day × retention × replication")
	add("Kafka disk, schedule topic", gb(schedBytes*v(in.ScheduleRetentionDays)*v(in.Replication)), "", "schedule bytes a day × retention × replication")

	// Redis memory.
	idemPer := v(in.ShareEmail)*v(in.IdemBytesEmail) + v(in.ShareSMS)*v(in.IdemBytesSMS) + v(in.SharePush)*v(in.IdemBytesPush) + v(in.ShareInapp)*v(in.IdemBytesInapp)
	idem := v(in.NotificationsPerDay) * v(in.IdemRetentionDays) * idemPer
	add("idempotency keys, 7 days", gb(idem), "", fmt.Sprintf("notifications a day × lifetime × %s bytes (bytes weighted by channel share)", num(idemPer)))
	add("idempotency keys, if kept 1 day", gb(idem/v(in.IdemRetentionDays)), "", "the same for HERALD_IDEMPOTENCY_RETENTION=24h (the least it may be: HERALD_RETRY_MAX_AGE)")
	items := math.Min(v(in.NotificationsPerDay)*v(in.ShareInapp)*v(in.FeedMaxAgeDays), v(in.Members)*v(in.FeedMaxItems))
	feed := items * v(in.FeedItemBytes)
	add("in-app feeds", gb(feed), "", "min(in-app a day × 30 days, members × 200) × bytes per item")
	sched := reminders * v(in.ReminderLeadDays) * v(in.ScheduleBytes)
	add("scheduler index (one hash slot)", gb(sched), "", "reminders a day × days waiting × bytes per waiting reminder")
	capsB := v(in.NotificationsPerDay) * v(in.ShareHeld) * (1 - v(in.SMSOfReminders)) / 24 * v(in.CapBytes)
	capsB += v(in.NotificationsPerDay) * v(in.ShareHeld) * v(in.SMSOfReminders) * v(in.CapBytes)
	add("frequency-cap windows", gb(capsB), "", "push reminders in an hour (1 h windows) + SMS reminders in a day (24 h windows), × bytes per take")
	prefsB := v(in.Members) * v(in.PrefsBytes)
	add("preferences (if every member chose)", gb(prefsB), "", "members × bytes per person")
	data := idem + feed + sched + capsB + prefsB
	add("Redis data, receipts off", gb(data), "", "sum of the above")
	receipts := v(in.NotificationsPerDay) * (v(in.ShareEmail) + v(in.ShareSMS)) * 7 * v(in.ReceiptBytes)
	add("delivery receipts, if on for email and SMS", gb(receipts), "", "(email + SMS) a day × 7 days × bytes per receipt")
	perNode := v(in.RedisNodeGB) * 1e9 * (1 - v(in.RedisReserve))
	shardsMem := math.Ceil(data / perNode)
	add("maxmemory per shard", gb(perNode), "", "node memory × (1 − reserve)")
	add("Redis memory bought (primaries + replicas)", gb(shardsMem*v(in.RedisNodeGB)*1e9*(1+v(in.RedisReplicas))), "", "shards × node memory × (1 + replicas)")

	redisPer := v(in.RedisCPUIdem) + v(in.RedisCPUSuppress) + v(in.RedisCPUPrefs) + v(in.ShareInapp)*v(in.RedisCPUFeed) +
		v(in.ShareHeld)*(1-v(in.SMSOfReminders))*v(in.RedisCPUCaps) + v(in.ShareHeld)*v(in.RedisCPUSchedule)
	redisCores := peak * redisPer / 1e6
	shardsCPU := math.Ceil(redisCores / v(in.RedisShardCPU))
	add("Redis CPU per notification", num2(redisPer)+" µs", "", "claim + mark + suppression + preferences + share in-app × feed + share push reminders × cap + share held × schedule")
	add("Redis command-thread cores at peak", num2(redisCores), "", "peak × Redis CPU per notification")
	add("Redis Cluster shards", num(math.Max(shardsMem, shardsCPU)), "", fmt.Sprintf("max(by memory ⌈data ÷ maxmemory⌉ = %s, by CPU ⌈cores ÷ target use⌉ = %s)", num(shardsMem), num(shardsCPU)))
	add("scheduler index ÷ one shard's maxmemory", pct(sched/perNode), "", "the index lives in one hash slot, on one master")

	// Providers.
	smsSeg := peak * v(in.ShareSMS) * v(in.SMSSegments)
	add("SMS segments/s at peak", num(smsSeg), "", "peak × share SMS × segments")
	add("Twilio senders needed: US long codes / short codes / other-country senders",
		fmt.Sprintf("%s / %s / %s", num(math.Ceil(smsSeg/v(in.TwilioLongCodeMPS))), num(math.Ceil(smsSeg/v(in.TwilioShortCodeMPS))), num(math.Ceil(smsSeg/v(in.TwilioIntlMPS)))), "",
		"segments/s ÷ each sender's rate, if all SMS went through that kind")
	pushMin := peak * v(in.SharePush) * 60
	add("push per minute at peak ÷ FCM quota", pct(pushMin/v(in.FCMPerMinute)), "", "peak × share push × 60 ÷ 600,000")
	pushRem := reminders * (1 - v(in.SMSOfReminders))
	add("share of a day's push reminders due in one minute that fills FCM's quota", pct(v(in.FCMPerMinute)/pushRem), "", "600,000 ÷ push reminders a day")
	return rows
}

func num(x float64) string {
	if x != math.Trunc(x) && math.Abs(x) < 10 {
		return num2(x)
	}
	s := fmt.Sprintf("%.0f", x)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func num2(x float64) string { return fmt.Sprintf("%.2f", x) }

func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/1e6) }

func gb(b float64) string {
	if b >= 1e12 {
		return fmt.Sprintf("%.2f TB", b/1e12)
	}
	return fmt.Sprintf("%.1f GB", b/1e9)
}

func pct(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

// Markdown is the two tables docs/scale.md carries between its markers.
func Markdown(in Inputs) string {
	var b strings.Builder
	b.WriteString("### Inputs\n\n| input | value | source |\n|---|---:|---|\n")
	for _, i := range in.Table() {
		val := fmt.Sprintf("%g", i.Value)
		if i.Value >= 1000 {
			val = num(i.Value)
		}
		if i.Unit != "" {
			val += " " + i.Unit
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", i.Name, val, i.Source)
	}
	b.WriteString("\n### Results\n\n| result | today's CPU | target CPU | how |\n|---|---:|---:|---|\n")
	for _, r := range Compute(in) {
		t := r.Target
		if t == "" {
			t = "same"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.What, r.Now, t, r.Formula)
	}
	return b.String()
}
