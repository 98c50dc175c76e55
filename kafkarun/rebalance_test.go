package kafkarun_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// The broker stand-in's group coordinator (franz-go's kfake, patched in
// third_party/kfake) must keep two promises of Kafka's that consumer groups
// rely on to re-form after a burst of crashes (issue 10). The two tests
// below are the minimal reproductions of where the upstream stand-in broke
// them; both fail against it.

// joinGroup performs the two-step JoinGroup of protocol v4+ (the first call
// is answered MEMBER_ID_REQUIRED with the member id to use).
func joinGroup(ctx context.Context, client *kafka.Client, group, member string, session, rebalance time.Duration) (*kafka.JoinGroupResponse, error) {
	for {
		resp, err := client.JoinGroup(ctx, &kafka.JoinGroupRequest{
			GroupID: group, MemberID: member, ProtocolType: "consumer",
			SessionTimeout: session, RebalanceTimeout: rebalance,
			Protocols: []kafka.GroupProtocol{{Name: "range", Metadata: kafka.GroupProtocolSubscription{Topics: []string{"t"}}}},
		})
		if err != nil {
			return nil, err
		}
		if errors.Is(resp.Error, kafka.MemberIDRequired) {
			member = resp.MemberID
			continue
		}
		return resp, resp.Error
	}
}

// formAndFallSilent forms group with one member that syncs and then says
// nothing more, as a SIGKILLed process does; its session is long, so only a
// rebalance drops it.
func formAndFallSilent(t *testing.T, ctx context.Context, client *kafka.Client, group string, rebalance time.Duration) {
	t.Helper()
	a, err := joinGroup(ctx, client, group, "", 20*time.Second, rebalance)
	if err != nil {
		t.Fatalf("first member: %v", err)
	}
	if _, err := client.SyncGroup(ctx, &kafka.SyncGroupRequest{GroupID: group, GenerationID: a.GenerationID, MemberID: a.MemberID,
		ProtocolType: "consumer", ProtocolName: a.ProtocolName,
		Assignments: []kafka.SyncGroupRequestAssignment{{MemberID: a.MemberID}}}); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// TestCoordinatorRebalanceDeadline: a rebalance has one deadline, the
// rebalance timeout from when it began; members joining meanwhile do not
// move it. The upstream stand-in restarted it on every join, so joins less
// than a timeout apart (a crash loop) held every waiting member for as long
// as they kept coming: here 3.8 s instead of 1 s.
func TestCoordinatorRebalanceDeadline(t *testing.T) {
	c := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers()...), Timeout: 20 * time.Second}
	const group, rebalance = "deadline", time.Second
	formAndFallSilent(t, ctx, client, group, rebalance)

	start := time.Now()
	answered := make(chan time.Duration, 1)
	go func() {
		if _, err := joinGroup(ctx, client, group, "", 20*time.Second, rebalance); err != nil {
			t.Errorf("waiting member: %v", err)
		}
		answered <- time.Since(start)
	}()
	var d time.Duration
	func() {
		for range 4 { // newcomers every 0.7 timeouts
			select {
			case d = <-answered:
				return
			case <-time.After(rebalance * 7 / 10):
			}
			go func() { _, _ = joinGroup(ctx, client, group, "", 20*time.Second, rebalance) }()
		}
		d = <-answered
	}()
	t.Logf("a member waiting in JoinGroup was answered after %v (rebalance timeout %v)", d.Round(10*time.Millisecond), rebalance)
	if d > rebalance+500*time.Millisecond {
		t.Errorf("answered after %v; the rebalance deadline (%v from its start) moved with the joins that came after", d.Round(10*time.Millisecond), rebalance)
	}
}

// TestCoordinatorAnswersWaitingMembers: a member waiting in JoinGroup
// satisfies its heartbeats until the rebalance ends, however long that
// takes past its session timeout. The upstream stand-in expired it at its
// session timeout without answering its join, so the client waited for its
// own deadline and then joined again under a new member id.
func TestCoordinatorAnswersWaitingMembers(t *testing.T) {
	c := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// One connection per member: a connection's requests are answered in
	// order, so a join waiting on one would hold up the others.
	clientA, clientB, clientC := newClient(c), newClient(c), newClient(c)
	const group, rebalance, session = "waiting", 3 * time.Second, time.Second
	sync := func(client *kafka.Client, r *kafka.JoinGroupResponse) error {
		var as []kafka.SyncGroupRequestAssignment
		for _, m := range r.Members {
			as = append(as, kafka.SyncGroupRequestAssignment{MemberID: m.ID})
		}
		_, err := client.SyncGroup(ctx, &kafka.SyncGroupRequest{GroupID: group, GenerationID: r.GenerationID, MemberID: r.MemberID,
			ProtocolType: "consumer", ProtocolName: r.ProtocolName, Assignments: as})
		return err
	}
	// A (long session, silent from now on) and B (1 s session) form the group.
	a, err := joinGroup(ctx, clientA, group, "", 20*time.Second, rebalance)
	if err != nil {
		t.Fatal(err)
	}
	if err := sync(clientA, a); err != nil {
		t.Fatal(err)
	}
	bJoined := make(chan *kafka.JoinGroupResponse, 1)
	go func() {
		r, err := joinGroup(ctx, clientB, group, "", session, rebalance)
		if err != nil {
			t.Error(err)
		}
		bJoined <- r
	}()
	time.Sleep(100 * time.Millisecond)
	if a, err = joinGroup(ctx, clientA, group, a.MemberID, 20*time.Second, rebalance); err != nil {
		t.Fatal(err)
	}
	b := <-bJoined
	if b == nil {
		t.FailNow()
	}
	go func() { _ = sync(clientA, a) }()
	if err := sync(clientB, b); err != nil { // B's session runs from here
		t.Fatal(err)
	}

	// C joins: a rebalance that waits for A for a whole rebalance timeout.
	// B rejoins at once and waits with it, past its 1 s session.
	go func() { _, _ = joinGroup(ctx, clientC, group, "", 20*time.Second, rebalance) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	jctx, jcancel := context.WithTimeout(ctx, rebalance+5*time.Second)
	defer jcancel()
	resp, err := joinGroup(jctx, clientB, group, b.MemberID, session, rebalance)
	if err != nil {
		t.Fatalf("a member that waited %v in JoinGroup (session %v, rebalance %v) got no answer: %v", time.Since(start).Round(time.Millisecond), session, rebalance, err)
	}
	t.Logf("answered after %v: generation %d with %d members", time.Since(start).Round(10*time.Millisecond), resp.GenerationID, len(resp.Members))
}

func newClient(c *kafkatest.Cluster) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.Brokers()...), Timeout: 20 * time.Second, Transport: &kafka.Transport{}}
}

// TestGroupReformsAfterCrashLoop is issue 10's crash burst in one process.
// Three consumers hold a group; then a crash loop: a member starts, joins,
// and is killed 0.6 rebalance timeouts later (connections cut, no
// LeaveGroup, and a long session so that only a rebalance drops it), and
// the next one starts at once. Each newcomer restarts the rebalance and the
// stand-in restarts its deadline with it (TestStandInRebalanceDeadlineMoves),
// so the survivors wait in JoinGroup for as long as the loop lasts.
//
// The survivors must wait it out under the member ids they have: before the
// fix, kafka-go's join deadline (its 5 s default timeout plus the rebalance
// timeout) ran out first, the survivors dropped their member ids and joined
// again as new members, leaving the old ones behind as more dead members
// for the next rebalance: the crash loop fed itself. And when the loop
// stops, all three must hold a generation again within a bound.
func TestGroupReformsAfterCrashLoop(t *testing.T) {
	c, _ := setup(t, "storm", 6)
	const rebalance = 4 * time.Second
	cfg := kafkarun.ConsumerConfig{Brokers: c.Brokers(), GroupID: "storm-g", Topics: []string{"storm"},
		SessionTimeout: 6 * time.Second, RebalanceTimeout: rebalance, HeartbeatInterval: 500 * time.Millisecond}
	h := func(context.Context, *queue.Message) error { return nil }
	ctx, cancel := context.WithCancel(context.Background())
	var consumers []*kafkarun.Consumer
	var wg sync.WaitGroup
	joinErrs := &joinErrors{}
	cfg.Observer = joinErrs
	for range 3 {
		cons, err := kafkarun.NewConsumer(cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		consumers = append(consumers, cons)
		wg.Add(1)
		go func() { defer wg.Done(); _ = cons.Run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()
	allJoined := func() bool {
		for _, cons := range consumers {
			if !cons.Joined() {
				return false
			}
		}
		return true
	}
	poll.Until(t, 45*time.Second, "all three consumers to hold a generation", allJoined)

	// Long enough to have held the survivors past kafka-go's join deadline
	// (5 s + 4 s) upstream.
	var ghosts sync.WaitGroup
	var prev *killable
	for start := time.Now(); time.Since(start) < 7*time.Second; time.Sleep(rebalance * 6 / 10) {
		if prev != nil {
			prev.kill()
		}
		prev = startGhost(t, &ghosts, c.Brokers(), cfg)
	}
	prev.kill()
	ghosts.Wait()
	stopped := time.Now()

	bound := 3*rebalance + cfg.SessionTimeout
	deadline := stopped.Add(bound + 20*time.Second)
	for !allJoined() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(stopped)
	for i, cons := range consumers {
		m := cons.Membership()
		t.Logf("consumer %d: joined=%v generation %d", i, m.Joined, m.Generation)
	}
	joinErrs.mu.Lock()
	for _, err := range joinErrs.errs {
		t.Logf("join error: %v", err)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("a survivor gave up waiting in JoinGroup (and so rejoined as a new member): %v", err)
		}
	}
	joinErrs.mu.Unlock()
	if !allJoined() {
		client := &kafka.Client{Addr: kafka.TCP(c.Brokers()...)}
		if d, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{cfg.GroupID}}); err == nil {
			for _, g := range d.Groups {
				t.Logf("broker says: group %s state %s, %d members", g.GroupID, g.GroupState, len(g.Members))
				for _, m := range g.Members {
					t.Logf("  member %s client %s host %s", m.MemberID, m.ClientID, m.ClientHost)
				}
			}
		}
		t.Fatalf("the group had not re-formed %v after the crash loop ended", took.Round(time.Second))
	}
	t.Logf("all three consumers held a generation %v after the crash loop ended (bound %v)", took.Round(10*time.Millisecond), bound)
	if took > bound {
		t.Errorf("the group re-formed %v after the crash loop ended; want within %v (3 rebalance timeouts and a session timeout)", took.Round(time.Second), bound)
	}
}

// killable is a group member whose process can be SIGKILLed: its
// connections are cut and it can dial no more, so it never leaves.
type killable struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
	cg    *kafka.ConsumerGroup
}

func (k *killable) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dead {
		return nil, errors.New("killed")
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		k.conns = append(k.conns, conn)
	}
	return conn, err
}

func (k *killable) kill() {
	k.mu.Lock()
	k.dead = true
	for _, c := range k.conns {
		c.Close()
	}
	k.mu.Unlock()
	go k.cg.Close()
}

func startGhost(t *testing.T, wg *sync.WaitGroup, brokers []string, cfg kafkarun.ConsumerConfig) *killable {
	t.Helper()
	k := &killable{}
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: cfg.GroupID, Brokers: brokers, Topics: cfg.Topics, Dialer: &kafka.Dialer{DialFunc: k.dial},
		SessionTimeout: 30 * time.Second, RebalanceTimeout: cfg.RebalanceTimeout, HeartbeatInterval: cfg.HeartbeatInterval,
		JoinGroupBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	k.cg = cg
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if _, err := cg.Next(context.Background()); errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
		}
	}()
	return k
}

// joinErrors records the consumers' failed joins.
type joinErrors struct {
	kafkarun.NopObserver
	mu   sync.Mutex
	errs []error
}

func (j *joinErrors) JoinFailed(err error) {
	j.mu.Lock()
	j.errs = append(j.errs, err)
	j.mu.Unlock()
}

// TestCoordinatorExpiresAMemberItsAnswerNeverReached: a member killed
// while it waits in JoinGroup is still a member of the generation the
// rebalance then forms, and it must expire at its session timeout like
// any member that stops heartbeating. kfake re-armed a member's session
// only when its JoinGroup answer reached it, so such a member stayed in
// the group for good and kept its partitions: an outside tester's four
// SIGKILLs of an inapp process within five seconds left the dashboards'
// groups holding every partition by dead members, for as long as nothing
// else rebalanced them (herald dev, nineteenth pass of issue 14).
func TestCoordinatorExpiresAMemberItsAnswerNeverReached(t *testing.T) {
	c := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const group, rebalance, session = "unanswered", 3 * time.Second, time.Second
	clientA := newClient(c)
	a, err := joinGroup(ctx, clientA, group, "", session, rebalance)
	if err != nil {
		t.Fatal(err)
	}
	syncA := func(r *kafka.JoinGroupResponse) {
		t.Helper()
		var as []kafka.SyncGroupRequestAssignment
		for _, m := range r.Members {
			as = append(as, kafka.SyncGroupRequestAssignment{MemberID: m.ID})
		}
		if _, err := clientA.SyncGroup(ctx, &kafka.SyncGroupRequest{GroupID: group, GenerationID: r.GenerationID, MemberID: r.MemberID,
			ProtocolType: "consumer", ProtocolName: r.ProtocolName, Assignments: as}); err != nil {
			t.Fatal(err)
		}
	}
	syncA(a)

	// B joins on a connection of its own and is killed while it waits.
	var mu sync.Mutex
	var conns []net.Conn
	clientB := &kafka.Client{Addr: kafka.TCP(c.Brokers()...), Timeout: 20 * time.Second, Transport: &kafka.Transport{
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				mu.Lock()
				conns = append(conns, conn)
				mu.Unlock()
			}
			return conn, err
		}}}
	go func() { _, _ = joinGroup(ctx, clientB, group, "", session, rebalance) }()
	time.Sleep(300 * time.Millisecond) // B waits in JoinGroup under its member id
	mu.Lock()
	for _, conn := range conns {
		conn.Close()
	}
	mu.Unlock()

	// A rejoins: the generation forms with B in it, B's answer goes nowhere.
	if a, err = joinGroup(ctx, clientA, group, a.MemberID, session, rebalance); err != nil {
		t.Fatal(err)
	}
	if len(a.Members) != 2 {
		t.Fatalf("the generation formed with %d members, want A and the killed B", len(a.Members))
	}
	syncA(a)
	// A heartbeats; B never does. Within a few of B's sessions the
	// coordinator must expire it: the group lists A alone. (A heartbeat's
	// answer cannot tell: kafka-go reads kfake's RebalanceInProgress to
	// it as a throttle time.)
	deadline := time.Now().Add(5 * session)
	for {
		if _, err := clientA.Heartbeat(ctx, &kafka.HeartbeatRequest{GroupID: group, GenerationID: int32(a.GenerationID), MemberID: a.MemberID}); err != nil {
			t.Fatal(err)
		}
		d, err := clientA.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Groups) == 1 && len(d.Groups[0].Members) == 1 && d.Groups[0].Members[0].MemberID == a.MemberID {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed member was still in the group %v after its answer went nowhere (session %v): %+v", 5*session, session, d.Groups)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
