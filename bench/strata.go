package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/miniotest"
	"github.com/strata-mq/strata/remoting"
)

// StrataOptions configures the Strata target.
type StrataOptions struct {
	// Binary is the strata executable to run; default: the running one
	// (os.Executable), which is what `strata bench` wants.
	Binary string
	// Flush is the broker's --flush: "sync" (default) or "async".
	Flush string
	// ColdTier runs the broker with a cold tier in a MinIO server of its
	// own (started with miniotest.StartServer), a small segment size and
	// --hot-retention 0, so that sealed segments leave the local disk as
	// soon as they are offloaded. Without it the broker runs with --tier
	// none.
	ColdTier bool
	// SegmentSize is the --segment-size: with the cold tier, default
	// 64MiB; without it, passed when set, and otherwise the broker's
	// default (1GiB) applies, explicitly with followers, which must run
	// with their leader's segment size.
	SegmentSize string
	// SegmentMaxAge is the --segment-max-age with the cold tier (default
	// 10s), so that a backlog's last segment goes cold too.
	SegmentMaxAge time.Duration
	// Topics, when set, are written into the broker's topic table
	// (<data-dir>/config/topics.json, RocketMQ's format) before it starts,
	// which keeps 10,000 admin round trips (and as many journal fsyncs)
	// out of the case's setup.
	Topics map[string]int
	// Followers runs this many followers beside the standalone leader:
	// `strata broker --broker-id 1..Followers`, each with a data
	// directory and a log of its own, copying the leader's log over its
	// replication port. Start returns once they are all in sync. They run
	// without a cold tier, which Followers excludes.
	Followers int
	// Replication is the leader's --replication with followers: "async"
	// (the default) or "sync", under which every send waits for all
	// Followers+1 copies (--min-insync-replicas Followers+1).
	Replication string
	// ExtraArgs are added to `strata standalone`'s flags.
	ExtraArgs []string
	// Logf reports progress (provisioning MinIO); may be nil.
	Logf func(format string, args ...any)
}

// StrataFactory returns a TargetFactory making Strata targets with opts,
// with the cold tier when the workload needs it, and the followers and
// replication mode it asks for.
func StrataFactory(opts StrataOptions) TargetFactory {
	return func(n TargetNeeds) (Target, error) {
		o := opts
		o.ColdTier = o.ColdTier || n.ColdTier
		if n.Followers > 0 || n.Replication != "" {
			o.Followers, o.Replication = n.Followers, n.Replication
		}
		if n.SegmentSize != "" {
			o.SegmentSize = n.SegmentSize
		}
		if n.SealAfter > 0 {
			o.SegmentMaxAge = n.SealAfter
		}
		if len(n.Topics) > 0 {
			o.Topics = n.Topics
		}
		return NewStrata(o)
	}
}

// Strata is the Target that runs `strata standalone` (name server and
// broker in one process) on free loopback ports, and talks to it with
// Strata's own client.
type Strata struct {
	opts StrataOptions

	dir     string
	namesrv string
	broker  string
	http    string
	ha      string // the leader's replication address
	logPath string
	cmdLine string // the last strata command line started
	// followerCmds are the followers' command lines, for Note (kept after
	// Stop).
	followerCmds []string

	minio *miniotest.Server

	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	followers []*strataFollower
	admin     *client.Client

	groups atomic.Int64
}

var (
	_ Target        = (*Strata)(nil)
	_ BatchProducer = strataProducer{}
	_ ColdTier      = (*Strata)(nil)
	_ ColdStarter   = (*Strata)(nil)
	_ Replicated    = (*Strata)(nil)
	_ ProcLabeler   = (*Strata)(nil)
)

// strataBrokerName is the broker name of the leader and its followers
// (standalone's default).
const strataBrokerName = "broker-a"

// strataFollower is one of the target's follower processes.
type strataFollower struct {
	id      int
	addr    string // client address
	http    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// NewStrata returns a Strata target; Start runs it.
func NewStrata(opts StrataOptions) (*Strata, error) {
	if opts.Flush == "" {
		opts.Flush = "sync"
	}
	if opts.Flush != "sync" && opts.Flush != "async" {
		return nil, fmt.Errorf("strata target: flush %q: want sync or async", opts.Flush)
	}
	if opts.Followers < 0 || opts.Followers > 8 {
		return nil, fmt.Errorf("strata target: %d followers: want 0 to 8", opts.Followers)
	}
	switch opts.Replication {
	case "":
		if opts.Followers > 0 {
			opts.Replication = "async"
		}
	case "async", "sync":
		if opts.Followers == 0 {
			return nil, fmt.Errorf("strata target: replication %s needs followers", opts.Replication)
		}
	default:
		return nil, fmt.Errorf("strata target: replication %q: want async or sync", opts.Replication)
	}
	if opts.Followers > 0 && opts.ColdTier {
		return nil, errors.New("strata target: followers with a cold tier are not supported")
	}
	if opts.SegmentSize == "" && opts.ColdTier {
		opts.SegmentSize = "64MiB"
	}
	if opts.SegmentSize == "" && opts.Followers > 0 {
		opts.SegmentSize = "1GiB" // standalone's default without a cold tier, for the followers too
	}
	if opts.SegmentMaxAge == 0 {
		opts.SegmentMaxAge = 10 * time.Second
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("strata target: find the strata binary: %w", err)
		}
		opts.Binary = exe
	}
	return &Strata{opts: opts}, nil
}

// Name is "strata flush=sync" (or async), with " copies=3
// replication=sync" (or async) with followers, and " tier=minio" when the
// cold tier is on.
func (s *Strata) Name() string {
	n := "strata flush=" + s.opts.Flush
	if s.opts.Followers > 0 {
		n += fmt.Sprintf(" copies=%d replication=%s", s.opts.Followers+1, s.opts.Replication)
	}
	if s.opts.ColdTier {
		n += " tier=minio"
	}
	return n
}

// Copies is how many copies of each message the target keeps: its
// followers and the leader.
func (s *Strata) Copies() int { return s.opts.Followers + 1 }

// ProcLabel tells the leader's process from the followers' when there are
// followers.
func (s *Strata) ProcLabel(pid int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.Followers == 0 {
		return ""
	}
	if s.cmd != nil && s.cmd.Process != nil && s.cmd.Process.Pid == pid {
		return "leader"
	}
	for _, f := range s.followers {
		if f.cmd.Process.Pid == pid {
			return fmt.Sprintf("follower-%d", f.id)
		}
	}
	return ""
}

// Note is the strata command lines the target ran, for the report.
func (s *Strata) Note() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmdLine == "" {
		return ""
	}
	n := s.cmdLine
	if s.opts.ColdTier {
		n += " (MinIO " + miniotest.Version + " on loopback as the cold tier)"
	}
	if len(s.opts.Topics) > 0 {
		n += fmt.Sprintf("; its %d topics were written into the topic table before start", len(s.opts.Topics))
	}
	for i, c := range s.followerCmds {
		n += fmt.Sprintf("; follower %d: %s", i+1, c)
	}
	return n
}

// NameServer returns the address of the name server (after Start).
func (s *Strata) NameServer() string { return s.namesrv }

// LogPath returns the path of the server's log (after Start).
func (s *Strata) LogPath() string { return s.logPath }

// Start starts MinIO when the cold tier is on, then `strata standalone`
// with its data under dir, and waits until the broker has registered with
// the name server; then the followers, if any, and waits until the leader
// counts them all in sync. Ports taken by someone else meanwhile are
// retried.
func (s *Strata) Start(ctx context.Context, dir string) error {
	if _, err := os.Stat(s.opts.Binary); err != nil {
		return fmt.Errorf("strata target: binary: %w", err)
	}
	s.dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("strata target: %w", err)
	}
	if len(s.opts.Topics) > 0 {
		if err := writeTopicTable(filepath.Join(dir, "data", "config"), s.opts.Topics); err != nil {
			return fmt.Errorf("strata target: %w", err)
		}
	}
	var env []string
	args := []string{"standalone", "--data-dir", filepath.Join(dir, "data"), "--flush", s.opts.Flush,
		"--auto-create-topics", "--log-level", "info"}
	if s.opts.ColdTier {
		srv, err := miniotest.StartServer(ctx, filepath.Join(dir, "minio"), s.opts.Logf)
		if err != nil {
			return fmt.Errorf("strata target: the cold tier's MinIO: %w", err)
		}
		s.minio = srv
		if err := srv.MakeBucket(ctx, "strata-bench"); err != nil {
			s.stopMinio()
			return fmt.Errorf("strata target: %w", err)
		}
		env = []string{"MINIO_ROOT_USER=" + srv.AccessKey, "MINIO_ROOT_PASSWORD=" + srv.SecretKey}
		args = append(args, "--tier", "minio://"+srv.Endpoint+"/strata-bench/bench",
			"--segment-size", s.opts.SegmentSize, "--hot-retention", "0",
			"--segment-max-age", s.opts.SegmentMaxAge.String())
	} else {
		args = append(args, "--tier", "none")
		if s.opts.SegmentSize != "" {
			args = append(args, "--segment-size", s.opts.SegmentSize)
		}
	}
	if s.opts.Followers > 0 {
		args = append(args, "--broker-name", strataBrokerName, "--replication", s.opts.Replication)
		if s.opts.Replication == "sync" {
			args = append(args, "--min-insync-replicas", strconv.Itoa(s.opts.Followers+1))
		}
	}
	args = append(args, s.opts.ExtraArgs...)
	s.logPath = filepath.Join(dir, "strata.log")
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.start(ctx, args, env); err == nil || !addrInUse(err) {
			break
		}
	}
	if err == nil && s.opts.Followers > 0 {
		if err = s.startFollowers(ctx); err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = s.Stop(sctx) // the leader and the followers started
			cancel()
			return err
		}
	}
	if err != nil {
		s.stopMinio()
	}
	return err
}

func addrInUse(err error) bool { return strings.Contains(err.Error(), "address already in use") }

// spawn starts the strata binary with args and env, its output appended
// to logPath, and returns it with a channel closed once it has exited.
func (s *Strata) spawn(args, env []string, logPath string) (*exec.Cmd, chan struct{}, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("strata target: log file: %w", err)
	}
	fmt.Fprintf(logf, "=== bench: %s %s\n", s.opts.Binary, strings.Join(args, " "))
	cmd := exec.Command(s.opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the bench
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("strata target: start %s: %w", s.opts.Binary, err)
	}
	logf.Close() // the child has its own copy
	exited := make(chan struct{})
	go func() { // owned by the Strata target: ends when the process exits
		_ = cmd.Wait()
		close(exited)
	}()
	return cmd, exited, nil
}

func (s *Strata) start(ctx context.Context, args, env []string) error {
	// The replication port too: by default it is the client port's
	// next, which may be taken.
	ports, err := freePorts(4)
	if err != nil {
		return fmt.Errorf("strata target: %w", err)
	}
	s.broker, s.namesrv, s.http, s.ha = ports[0], ports[1], ports[2], ports[3]
	args = append(slices.Clone(args), "--listen", s.broker, "--namesrv-listen", s.namesrv, "--http-listen", s.http,
		"--ha-listen", s.ha)
	s.mu.Lock()
	s.cmdLine = joinArgs(append([]string{filepath.Base(s.opts.Binary)}, args...))
	s.mu.Unlock()
	cmd, exited, err := s.spawn(args, env, s.logPath)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	if err := s.waitReady(ctx, exited, 30*time.Second); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		s.mu.Lock()
		s.cmd = nil
		s.mu.Unlock()
		return fmt.Errorf("strata target: %w\nlog (%s):\n%s", err, s.logPath, logTail(s.logPath, 3000))
	}
	admin, err := client.New(client.NameServers(s.namesrv))
	if err != nil {
		return fmt.Errorf("strata target: %w", err)
	}
	s.mu.Lock()
	s.admin = admin
	s.mu.Unlock()
	return nil
}

// waitReady waits until /healthz answers and the name server knows a live
// broker.
func (s *Strata) waitReady(ctx context.Context, exited <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	cl, err := client.New(client.NameServers(s.namesrv), client.RequestTimeout(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-exited:
			return errors.New("strata exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %w", timeout, errors.Join(ctx.Err(), last))
		case <-tick.C:
		}
		resp, err := hc.Get("http://" + s.http + "/healthz")
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		ci, err := cl.ClusterInfo(ctx)
		if err != nil {
			last = err
			continue
		}
		for _, b := range ci.Brokers {
			if b.LeaderAddr() != "" {
				return nil
			}
		}
		last = errors.New("no broker registered with the name server yet")
	}
}

// CreateTopics creates topics with queues read and write queues each, 32 at
// a time (each creation waits until the name server routes the topic).
func (s *Strata) CreateTopics(ctx context.Context, topics []string, queues int) error {
	s.mu.Lock()
	admin := s.admin
	s.mu.Unlock()
	if admin == nil {
		return errors.New("strata target: not started")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, t := range topics {
		g.Go(func() error {
			if err := admin.CreateTopic(gctx, client.TopicConfig{Name: t, ReadQueues: queues, WriteQueues: queues}); err != nil {
				return fmt.Errorf("strata target: create topic %s: %w", t, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// Producer opens a client.Producer of its own (one connection to the
// broker, over which concurrent sends pipeline).
func (s *Strata) Producer(ctx context.Context) (Producer, error) {
	p, err := client.NewProducer(client.NameServers(s.namesrv), client.ProducerGroup("strata-bench"))
	if err != nil {
		return nil, fmt.Errorf("strata target: producer: %w", err)
	}
	return strataProducer{p}, nil
}

type strataProducer struct{ p *client.Producer }

func (p strataProducer) Send(ctx context.Context, topic string, body []byte) error {
	_, err := p.p.Send(ctx, client.Message{Topic: topic, Body: body})
	return err
}

// SendBatch sends bodies as one SEND_BATCH_MESSAGE.
func (p strataProducer) SendBatch(ctx context.Context, topic string, bodies [][]byte) error {
	msgs := make([]client.Message, len(bodies))
	for i, b := range bodies {
		msgs[i] = client.Message{Topic: topic, Body: b}
	}
	_, err := p.p.Send(ctx, msgs...)
	return err
}

func (p strataProducer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.p.Close(ctx)
}

// Consume runs a client.Consumer (Run) of a consumer group of its own,
// subscribed to topics, until ctx is done.
func (s *Strata) Consume(ctx context.Context, topics []string, fromStart bool, h func(body []byte)) error {
	group := fmt.Sprintf("strata-bench-%d-%d", os.Getpid(), s.groups.Add(1))
	from := client.FromLastOffset
	if fromStart {
		from = client.FromFirstOffset
	}
	opts := []client.ConsumerOpt{client.NameServers(s.namesrv), client.ConsumerGroup(group), client.StartFrom(from),
		client.PullBatchSize(256), client.HandlerBatchSize(256)}
	for _, t := range topics {
		opts = append(opts, client.Subscribe(t, "*"))
	}
	cs, err := client.NewConsumer(opts...)
	if err != nil {
		return fmt.Errorf("strata target: consumer: %w", err)
	}
	err = cs.Run(ctx, func(_ context.Context, msgs []client.MessageExt) error {
		for i := range msgs {
			h(msgs[i].Body)
		}
		return nil
	})
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cerr := cs.Close(cctx); err == nil && cerr != nil && !errors.Is(cerr, client.ErrClientClosed) {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("strata target: consume: %w", err)
	}
	return nil
}

// Pids returns the strata process (the leader), its followers' and, with
// the cold tier, MinIO's.
func (s *Strata) Pids() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pids []int
	if s.cmd != nil && s.cmd.Process != nil {
		pids = append(pids, s.cmd.Process.Pid)
	}
	for _, f := range s.followers {
		pids = append(pids, f.cmd.Process.Pid)
	}
	if s.minio != nil {
		if pid := s.minio.Pid(); pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Stop stops strata and its followers gracefully, all at once (SIGTERM;
// SIGKILL after 30 s or when ctx ends), waits for them, then stops MinIO.
func (s *Strata) Stop(ctx context.Context) error {
	type proc struct {
		name   string
		cmd    *exec.Cmd
		exited chan struct{}
	}
	var procs []proc
	s.mu.Lock()
	if s.cmd != nil {
		procs = append(procs, proc{"strata", s.cmd, s.exited})
	}
	for _, f := range s.followers {
		procs = append(procs, proc{fmt.Sprintf("follower %d", f.id), f.cmd, f.exited})
	}
	admin := s.admin
	s.cmd, s.admin, s.followers = nil, nil, nil
	s.mu.Unlock()
	if admin != nil {
		_ = admin.Close()
	}
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var errs []error
	for _, p := range procs {
		select {
		case <-p.exited:
			continue
		case <-dctx.Done():
		}
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("strata target: stop %s: %w", p.name, ctx.Err()))
		} else {
			errs = append(errs, fmt.Errorf("strata target: %s did not stop within 30s after SIGTERM; killed", p.name))
		}
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	s.stopMinio()
	return errors.Join(errs...)
}

// startFollowers starts the followers, each on free loopback ports (taken
// ones retried), waits until each serves, then until the leader counts
// them all in sync.
func (s *Strata) startFollowers(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for id := 1; id <= s.opts.Followers; id++ {
		g.Go(func() error {
			var err error
			for attempt := 0; attempt < 3; attempt++ {
				if err = s.startFollower(gctx, id); err == nil || !addrInUse(err) {
					break
				}
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return s.waitInSync(ctx, 60*time.Second)
}

// startFollower starts follower id (`strata broker --broker-id id`) with
// its data in <dir>/follower-<id> and its log in <dir>/follower-<id>.log,
// and waits until it serves /healthz.
func (s *Strata) startFollower(ctx context.Context, id int) error {
	ports, err := freePorts(3)
	if err != nil {
		return fmt.Errorf("strata target: %w", err)
	}
	f := &strataFollower{id: id, addr: ports[0], http: ports[2],
		logPath: filepath.Join(s.dir, fmt.Sprintf("follower-%d.log", id))}
	args := []string{"broker", "--broker-id", strconv.Itoa(id), "--broker-name", strataBrokerName,
		"--namesrv", s.namesrv, "--listen", f.addr, "--ha-listen", ports[1], "--http-listen", f.http,
		"--data-dir", filepath.Join(s.dir, fmt.Sprintf("follower-%d", id)), "--tier", "none",
		"--flush", s.opts.Flush, "--segment-size", s.opts.SegmentSize, "--log-level", "info"}
	cmdLine := joinArgs(append([]string{filepath.Base(s.opts.Binary)}, args...))
	cmd, exited, err := s.spawn(args, nil, f.logPath)
	if err != nil {
		return err
	}
	f.cmd, f.exited = cmd, exited
	if err := waitHealthy(ctx, f.http, exited, 30*time.Second); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("strata target: follower %d: %w\nlog (%s):\n%s", id, err, f.logPath, logTail(f.logPath, 3000))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followers = append(s.followers, f)
	slices.SortFunc(s.followers, func(a, b *strataFollower) int { return a.id - b.id })
	if len(s.followerCmds) < id {
		s.followerCmds = append(s.followerCmds, make([]string, id-len(s.followerCmds))...)
	}
	s.followerCmds[id-1] = cmdLine
	return nil
}

// waitHealthy waits until http://addr/healthz answers, the process exits
// or timeout passes.
func waitHealthy(ctx context.Context, addr string, exited <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-exited:
			return errors.New("exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("not serving after %v: %w", timeout, errors.Join(ctx.Err(), last))
		case <-tick.C:
		}
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		return nil
	}
}

// waitInSync waits until the leader counts all Followers+1 copies in sync
// (client.ReplicationStatus.InSync), failing early when a process exits.
func (s *Strata) waitInSync(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s.mu.Lock()
	admin, leaderExited, followers := s.admin, s.exited, slices.Clone(s.followers)
	s.mu.Unlock()
	if admin == nil {
		return errors.New("strata target: not started")
	}
	want := s.opts.Followers + 1
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		select {
		case <-leaderExited:
			return fmt.Errorf("strata target: the leader exited while its followers caught up\nlog (%s):\n%s", s.logPath, logTail(s.logPath, 3000))
		default:
		}
		for _, f := range followers {
			select {
			case <-f.exited:
				return fmt.Errorf("strata target: follower %d exited while catching up\nlog (%s):\n%s", f.id, f.logPath, logTail(f.logPath, 3000))
			default:
			}
		}
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := admin.ReplicationStatus(rctx, s.broker)
		rcancel()
		if err == nil && st.InSync >= want {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d of %d copies in sync, %d followers connected", st.InSync, want, len(st.Followers))
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("strata target: the followers not in sync after %v: %s", timeout, last)
			for _, f := range followers {
				msg += fmt.Sprintf("\nfollower %d's log (%s):\n%s", f.id, f.logPath, logTail(f.logPath, 1500))
			}
			return errors.New(msg)
		case <-tick.C:
		}
	}
}

func (s *Strata) stopMinio() {
	if s.minio != nil {
		s.minio.Stop()
		s.minio = nil
	}
}

// WaitCold waits until the first n messages of topic (over all its queues)
// are in the cold tier only (below each queue's hot start), or ctx ends,
// and returns the share of them that is. It needs the cold tier.
func (s *Strata) WaitCold(ctx context.Context, topic string, n int64) (float64, error) {
	s.mu.Lock()
	admin := s.admin
	s.mu.Unlock()
	if admin == nil || !s.opts.ColdTier {
		return 0, errors.New("strata target: no cold tier")
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var frac float64
	var last error
	for {
		st, err := admin.TierStatus(ctx, s.broker)
		if err == nil {
			var cold int64
			for _, q := range st.Queues {
				if q.Topic == topic {
					cold += q.HotMin
				}
			}
			frac = float64(cold) / float64(max(n, 1))
			pending := 0
			if st.Tier != nil {
				pending = st.Tier.PendingSegments
			}
			if frac >= 0.99 || (frac >= 0.9 && pending == 0) {
				return min(frac, 1), nil
			}
		} else if ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil && frac == 0 {
				return 0, fmt.Errorf("strata target: tier status: %w", last)
			}
			return min(frac, 1), nil
		case <-tick.C:
		}
	}
}

// ObjectStore returns the cold tier's MinIO, when it runs.
func (s *Strata) ObjectStore() (ObjectStoreInfo, bool) {
	if s.minio == nil {
		return ObjectStoreInfo{}, false
	}
	size, err := parseSize(s.opts.SegmentSize)
	if err != nil {
		size = 64 << 20
	}
	return ObjectStoreInfo{Endpoint: s.minio.Endpoint, AccessKey: s.minio.AccessKey, SecretKey: s.minio.SecretKey,
		ObjectSize: size, Dir: filepath.Join(s.dir, "minio")}, true
}

// ColdStartCommand runs the strata binary's hidden bench-coldstart-child
// command, which makes a client.Producer, sends one message to topic and
// exits.
func (s *Strata) ColdStartCommand(topic string) []string {
	return []string{s.opts.Binary, ColdStartChildCommand, "--namesrv", s.namesrv, "--topic", topic}
}

// writeTopicTable writes topics into a new broker's topics.json (the
// table of broker.OpenTopicManager, in RocketMQ's topics.json format) in
// one go; the broker adds TBW102 when it starts.
func writeTopicTable(confDir string, topics map[string]int) error {
	table := make(map[string]broker.TopicConfig, len(topics))
	for name, q := range topics {
		cfg := broker.TopicConfig{Name: name, ReadQueues: q, WriteQueues: q, Perm: int(remoting.PermReadWrite)}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("topic table: %w", err)
		}
		table[name] = cfg
	}
	b, err := json.Marshal(map[string]any{
		"topicConfigTable": table,
		"dataVersion":      map[string]int64{"timestamp": time.Now().UnixMilli(), "counter": 1},
	})
	if err != nil {
		return fmt.Errorf("topic table: %w", err)
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return fmt.Errorf("topic table: %w", err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "topics.json"), b, 0o644); err != nil {
		return fmt.Errorf("topic table: %w", err)
	}
	return nil
}

// freePorts returns n distinct free loopback addresses.
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// logTail returns the last n bytes of the file at path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return tail(string(b), n)
}

// parseSize parses sizes such as 64MiB, 1GiB, 512KiB or a number of bytes.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = num, u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit such as 64MiB", s)
	}
	return n * mult, nil
}
