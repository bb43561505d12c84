package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-mq/strata/internal/provision"
)

// NATS server module and the version the bench installs (pinned in
// ARCHITECTURE.md).
const (
	NATSServerModule  = "github.com/nats-io/nats-server/v2"
	NATSServerVersion = "v2.15.3"
)

// JetStreamSharedStream is the stream that holds every topic under the
// shared-stream mapping (see JetStreamMapping).
const JetStreamSharedStream = "STRATA"

// jsSubjectPrefix is the first token of every subject the bench publishes
// to, so that the shared stream's wildcard never captures inboxes or other
// traffic.
const jsSubjectPrefix = "strata"

// JetStreamMapping says how RocketMQ topics and queues map to JetStream.
// Whatever the mapping, queue q of topic t is the subject "strata.t.q",
// stored in a file-backed stream with one replica and limits retention.
type JetStreamMapping int

const (
	// JetStreamMappingAuto uses one stream per topic up to
	// JetStreamAutoStreamLimit topics in a CreateTopics call and the shared
	// stream beyond, where a JetStream user would use subjects rather than
	// streams: on a 2-core machine, creating 10,000 streams took 64 to 89
	// s, the server grew to 650 to 770 MB and 64 synchronous publishers
	// got a fifth of the throughput (default sync) or half (sync always)
	// of what one stream with a subject per topic gives, which is created
	// at once.
	JetStreamMappingAuto JetStreamMapping = iota
	// JetStreamStreamPerTopic creates one stream per topic, named after
	// the topic, with the subjects "strata.<topic>.*", as the OpenMessaging
	// Benchmark's NATS driver does (which ignores partitions).
	JetStreamStreamPerTopic
	// JetStreamOneStream stores every topic in the one stream
	// JetStreamSharedStream, with the subjects "strata.>".
	JetStreamOneStream
)

// String returns the mapping's name as reports print it.
func (m JetStreamMapping) String() string {
	switch m {
	case JetStreamMappingAuto:
		return "auto"
	case JetStreamStreamPerTopic:
		return "stream-per-topic"
	case JetStreamOneStream:
		return "one-stream"
	}
	return "JetStreamMapping(" + strconv.Itoa(int(m)) + ")"
}

// JetStreamAutoStreamLimit is the number of topics up to which
// JetStreamMappingAuto makes one stream per topic.
const JetStreamAutoStreamLimit = 100

// JetStreamOptions configure the NATS JetStream peer.
type JetStreamOptions struct {
	// SyncAlways sets `sync_interval: always`: JetStream fsyncs every
	// write before acknowledging it, the durability of Strata's
	// flush=sync. Otherwise the server keeps its default (a background
	// sync every 2 minutes; acknowledgements are not durable).
	SyncAlways bool
	// Binary is the nats-server executable to run. Empty installs
	// NATSServerModule@Version into the user cache directory (once).
	Binary string
	// Version is the nats-server version to install; NATSServerVersion
	// when empty.
	Version string
	// Port is the client port on 127.0.0.1; 0 picks a free one.
	Port int
	// Mapping maps topics to streams; JetStreamMappingAuto by default.
	Mapping JetStreamMapping
	// MaxBytes caps each stream's size (old messages are discarded
	// beyond it); 0 means unlimited.
	MaxBytes int64
	// PublishConns is the number of connections a Producer spreads its
	// sends over; 4 when 0.
	PublishConns int
	// StartTimeout bounds the wait for the server to accept clients once
	// started; 30 s when 0.
	StartTimeout time.Duration
	// Logger reports progress (the first install builds nats-server, which
	// takes a minute or more); slog.Default() when nil. The server's own
	// output goes to <dir>/nats-server.log.
	Logger *slog.Logger
}

const (
	defaultJSPublishConns = 4
	defaultJSStartTimeout = 30 * time.Second
	jsStopTimeout         = 10 * time.Second
	// jsConsumeBuffer is the number of messages all pull consumers of a
	// Consume call buffer in the client together.
	jsConsumeBuffer = 8192
	// jsMaxPayload matches RocketMQ's default maximum message size.
	jsMaxPayload = 4 << 20
)

// jsTopic is a created topic: its stream and its queues' subjects.
type jsTopic struct {
	stream   string
	subjects []string
	next     atomic.Uint64
}

// JetStream is the NATS JetStream peer Target: a real nats-server on
// loopback, driven through the nats.go jetstream client.
//
// Topics map to JetStream as JetStreamMapping says (by default one stream
// per topic when there are at most JetStreamAutoStreamLimit topics, one
// shared stream with a subject per topic beyond); queue q of topic t is the
// subject "strata.t.q" and producers round-robin over a topic's queues.
// Consumers are ephemeral pull consumers (Consume API) with AckNone:
// RocketMQ consumers commit their offsets in the background rather than
// acknowledging each message, so neither side pays a round trip per
// message.
type JetStream struct {
	opts JetStreamOptions
	log  *slog.Logger

	mu       sync.Mutex
	starting bool    // Start is running
	proc     *jsProc // the running server, nil when stopped
	url      string  // its client URL
	admin    *nats.Conn
	js       jetstream.JetStream // on admin
	topics   map[string]*jsTopic
	shared   bool     // the shared stream exists
	mappings []string // mappings CreateTopics used, for Note
}

// jsProc is a nats-server process.
type jsProc struct {
	cmd     *exec.Cmd
	logFile *os.File
	exited  chan struct{} // closed once the process has exited
	err     error         // cmd.Wait's result, set before exited is closed
}

// wait reaps the process.
func (p *jsProc) wait() {
	p.err = p.cmd.Wait()
	close(p.exited)
}

// done reports whether the process has exited.
func (p *jsProc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// NewJetStream returns the JetStream peer configured by o. It starts
// nothing until Start.
func NewJetStream(o JetStreamOptions) Target {
	if o.Version == "" {
		o.Version = NATSServerVersion
	}
	if o.PublishConns <= 0 {
		o.PublishConns = defaultJSPublishConns
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = defaultJSStartTimeout
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &JetStream{
		opts:   o,
		log:    log.With("target", "jetstream"),
		topics: make(map[string]*jsTopic),
	}
}

// Name returns "jetstream sync_interval=always" or
// "jetstream sync_interval=default".
func (j *JetStream) Name() string {
	if j.opts.SyncAlways {
		return "jetstream sync_interval=always"
	}
	return "jetstream sync_interval=default"
}

// Note describes the setup for reports: server version, durability, how
// topics were mapped, and the consumers' ack policy.
func (j *JetStream) Note() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	durability := "fsync before every ack"
	if !j.opts.SyncAlways {
		durability = "acks not durable (background sync every 2m)"
	}
	mapping := j.opts.Mapping.String()
	if len(j.mappings) > 0 {
		mapping = strings.Join(j.mappings, ", ")
	}
	return fmt.Sprintf("nats-server %s, %s; topics: %s, queue q of topic t = subject strata.t.q; "+
		"file storage, 1 replica, limits retention; ephemeral pull consumers, AckNone",
		j.opts.Version, durability, mapping)
}

// Start installs nats-server when needed, writes its configuration under
// dir, starts it on loopback and waits until JetStream answers.
func (j *JetStream) Start(ctx context.Context, dir string) error {
	j.mu.Lock()
	if j.proc != nil || j.starting {
		j.mu.Unlock()
		return errors.New("jetstream: already started")
	}
	j.starting = true
	j.mu.Unlock()
	defer func() {
		j.mu.Lock()
		j.starting = false
		j.mu.Unlock()
	}()

	bin := j.opts.Binary
	if bin == "" {
		var err error
		bin, err = provision.GoBinary(ctx, NATSServerModule, j.opts.Version, "nats-server", func(format string, args ...any) {
			j.log.Info(fmt.Sprintf(format, args...))
		})
		if err != nil {
			return fmt.Errorf("jetstream: install nats-server %s (needs the go command and the Go module proxy, "+
				"or JetStreamOptions.Binary): %w", j.opts.Version, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("jetstream: create %s: %w", dir, err)
	}
	// With a free port picked here, another process may take it before
	// the server binds it: pick another then.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		port := j.opts.Port
		if port == 0 {
			if port, err = jsFreePort(); err != nil {
				return err
			}
		} else if err = jsCheckPort(port); err != nil {
			return err
		}
		err = j.start(ctx, bin, dir, port)
		if err == nil || j.opts.Port != 0 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		j.log.Info("port taken meanwhile, trying another", "port", port)
	}
	return err
}

// start starts bin listening on port with its data under dir and waits
// until JetStream answers; on failure the process is gone.
func (j *JetStream) start(ctx context.Context, bin, dir string, port int) error {
	conf := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(conf, []byte(j.config(dir, port)), 0o644); err != nil {
		return fmt.Errorf("jetstream: write %s: %w", conf, err)
	}
	logPath := filepath.Join(dir, "nats-server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("jetstream: open server log: %w", err)
	}
	logStart, _ := logFile.Seek(0, io.SeekEnd)
	// Not CommandContext: the server outlives Start's context.
	p := &jsProc{cmd: exec.Command(bin, "-c", conf), logFile: logFile, exited: make(chan struct{})}
	p.cmd.Stdout = logFile
	p.cmd.Stderr = logFile
	if err := p.cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("jetstream: start %s: %w", bin, err)
	}
	go p.wait()
	syncMode := "default"
	if j.opts.SyncAlways {
		syncMode = "always"
	}
	j.log.Info("nats-server started", "pid", p.cmd.Process.Pid, "port", port, "sync_interval", syncMode, "log", logPath)

	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	nc, js, err := j.waitReady(ctx, url, p)
	if err != nil {
		_ = p.cmd.Process.Kill()
		<-p.exited
		_ = logFile.Close()
		return fmt.Errorf("%w\n%s", err, jsLogTail(logPath, logStart, 2000))
	}
	j.mu.Lock()
	j.proc, j.url, j.admin, j.js = p, url, nc, js
	j.topics, j.shared, j.mappings = make(map[string]*jsTopic), false, nil
	j.mu.Unlock()
	return nil
}

// config renders the server's configuration file.
func (j *JetStream) config(dir string, port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by strata bench.\n")
	fmt.Fprintf(&b, "server_name: strata_bench_peer\n")
	fmt.Fprintf(&b, "listen: \"127.0.0.1:%d\"\n", port)
	fmt.Fprintf(&b, "max_payload: %d\n", jsMaxPayload)
	fmt.Fprintf(&b, "jetstream {\n")
	fmt.Fprintf(&b, "  store_dir: %s\n", strconv.Quote(filepath.Join(dir, "jetstream")))
	if j.opts.SyncAlways {
		fmt.Fprintf(&b, "  sync_interval: always\n")
	}
	fmt.Fprintf(&b, "}\n")
	return b.String()
}

// waitReady connects to url until JetStream answers, the process exits,
// ctx ends or the start timeout passes.
func (j *JetStream) waitReady(ctx context.Context, url string, p *jsProc) (*nats.Conn, jetstream.JetStream, error) {
	ctx, cancel := context.WithTimeout(ctx, j.opts.StartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		nc, js, err := j.connect(ctx, url, "strata-bench-admin")
		if err == nil {
			_, err = js.AccountInfo(ctx)
			if err == nil {
				return nc, js, nil
			}
			nc.Close()
		}
		last = err
		select {
		case <-p.exited:
			return nil, nil, fmt.Errorf("jetstream: nats-server exited before accepting clients (%v); its log:", p.err)
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("jetstream: nats-server not ready (last error: %v): %w; its log:", last, ctx.Err())
		case <-tick.C:
		}
	}
}

// connect opens a client connection to url that does not try to
// reconnect (the server is local; losing it ends the run).
func (j *JetStream) connect(ctx context.Context, url, name string) (*nats.Conn, jetstream.JetStream, error) {
	timeout := 2 * time.Second
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Millisecond)
	}
	nc, err := nats.Connect(url, nats.Name(name), nats.Timeout(timeout), nats.NoReconnect())
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: connect to %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: client: %w", err)
	}
	return nc, js, nil
}

// running returns the server's URL and admin client, or an error when the
// target is not started.
func (j *JetStream) running() (string, jetstream.JetStream, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.proc == nil {
		return "", nil, errors.New("jetstream: not started")
	}
	return j.url, j.js, nil
}

// CreateTopics creates topics with queues subjects each, as the target's
// JetStreamMapping says: one stream per topic, or the shared stream
// (JetStreamMappingAuto decides per call, on the number of topics in it).
// A topic must be a valid NATS subject token and stream name (no '.', '*',
// '>', '/', '\' or white space). Creating a topic again with the same
// mapping is a no-op apart from its queue count, which the last call sets.
func (j *JetStream) CreateTopics(ctx context.Context, topics []string, queues int) error {
	_, js, err := j.running()
	if err != nil {
		return err
	}
	if queues <= 0 {
		return fmt.Errorf("jetstream: %d queues: need at least one", queues)
	}
	for _, t := range topics {
		if err := jsCheckTopic(t); err != nil {
			return err
		}
	}
	mapping := j.opts.Mapping
	if mapping == JetStreamMappingAuto {
		mapping = JetStreamStreamPerTopic
		if len(topics) > JetStreamAutoStreamLimit {
			mapping = JetStreamOneStream
		}
	}
	start := time.Now()
	made := make(map[string]*jsTopic, len(topics))
	switch mapping {
	case JetStreamOneStream:
		if err := j.ensureSharedStream(ctx, js); err != nil {
			return err
		}
		for _, t := range topics {
			made[t] = &jsTopic{stream: JetStreamSharedStream, subjects: jsTopicSubjects(t, queues)}
		}
	case JetStreamStreamPerTopic:
		for _, t := range topics {
			cfg := j.streamConfig(t, []string{jsSubjectPrefix + "." + t + ".*"})
			if _, err := js.CreateStream(ctx, cfg); err != nil {
				return fmt.Errorf("jetstream: create stream %s: %w", t, err)
			}
			made[t] = &jsTopic{stream: t, subjects: jsTopicSubjects(t, queues)}
		}
	default:
		return fmt.Errorf("jetstream: unknown mapping %v", mapping)
	}
	j.mu.Lock()
	for t, jt := range made {
		j.topics[t] = jt
	}
	if !slices.Contains(j.mappings, mapping.String()) {
		j.mappings = append(j.mappings, mapping.String())
	}
	j.mu.Unlock()
	j.log.Info("topics created", "topics", len(topics), "queues", queues, "mapping", mapping.String(),
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// ensureSharedStream creates the shared stream once.
func (j *JetStream) ensureSharedStream(ctx context.Context, js jetstream.JetStream) error {
	j.mu.Lock()
	shared := j.shared
	j.mu.Unlock()
	if shared {
		return nil
	}
	cfg := j.streamConfig(JetStreamSharedStream, []string{jsSubjectPrefix + ".>"})
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		return fmt.Errorf("jetstream: create stream %s: %w", JetStreamSharedStream, err)
	}
	j.mu.Lock()
	j.shared = true
	j.mu.Unlock()
	return nil
}

// streamConfig is the configuration of every stream the target creates.
func (j *JetStream) streamConfig(name string, subjects []string) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:      name,
		Subjects:  subjects,
		Storage:   jetstream.FileStorage,
		Replicas:  1,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		MaxBytes:  -1,
		MaxMsgs:   -1,
	}
	if j.opts.MaxBytes > 0 {
		cfg.MaxBytes = j.opts.MaxBytes
	}
	return cfg
}

func jsTopicSubjects(topic string, queues int) []string {
	s := make([]string, queues)
	for q := range s {
		s[q] = jsSubjectPrefix + "." + topic + "." + strconv.Itoa(q)
	}
	return s
}

// jsCheckTopic rejects topics that cannot be a subject token and a
// stream name.
func jsCheckTopic(t string) error {
	if t == "" {
		return errors.New("jetstream: empty topic name")
	}
	if strings.ContainsAny(t, ".*>/\\ \t\r\n\f\v") {
		return fmt.Errorf("jetstream: topic %q cannot be a NATS subject token and stream name ('.', '*', '>', '/', '\\' and white space are not allowed)", t)
	}
	if t == JetStreamSharedStream {
		return fmt.Errorf("jetstream: topic name %q is reserved for the shared stream", t)
	}
	return nil
}

// topic returns a created topic.
func (j *JetStream) topic(name string) (*jsTopic, error) {
	j.mu.Lock()
	t := j.topics[name]
	j.mu.Unlock()
	if t == nil {
		return nil, fmt.Errorf("jetstream: topic %q was not created", name)
	}
	return t, nil
}

// Producer opens PublishConns connections that Send spreads its
// synchronous publishes over.
func (j *JetStream) Producer(ctx context.Context) (Producer, error) {
	url, _, err := j.running()
	if err != nil {
		return nil, err
	}
	p := &jsProducer{target: j}
	for i := range j.opts.PublishConns {
		nc, js, err := j.connect(ctx, url, fmt.Sprintf("strata-bench-producer-%d", i))
		if err != nil {
			_ = p.Close()
			return nil, err
		}
		p.conns = append(p.conns, nc)
		p.js = append(p.js, js)
	}
	return p, nil
}

// jsProducer publishes with JetStream acknowledgements.
type jsProducer struct {
	target *JetStream
	conns  []*nats.Conn
	js     []jetstream.JetStream
	next   atomic.Uint64
}

// Send publishes body to the topic's next queue and waits for the
// stream's acknowledgement.
func (p *jsProducer) Send(ctx context.Context, topic string, body []byte) error {
	t, err := p.target.topic(topic)
	if err != nil {
		return err
	}
	subj := t.subjects[(t.next.Add(1)-1)%uint64(len(t.subjects))]
	js := p.js[(p.next.Add(1)-1)%uint64(len(p.js))]
	if _, err := js.Publish(ctx, subj, body); err != nil {
		return fmt.Errorf("jetstream: publish to %s: %w", subj, err)
	}
	return nil
}

// Close closes the producer's connections.
func (p *jsProducer) Close() error {
	for _, nc := range p.conns {
		nc.Close()
	}
	p.conns, p.js = nil, nil
	return nil
}

// Consume reads topics through ephemeral pull consumers (AckNone), from
// each stream's first message when fromStart is set (DeliverAll) and from
// its end otherwise (DeliverNew): one consumer per stream, filtered to the
// topics asked for when a stream holds others too. Each consumer's
// messages reach h from one goroutine. Consume returns nil when ctx ends,
// or an error if a consumer cannot be made or the connection is lost.
func (j *JetStream) Consume(ctx context.Context, topics []string, fromStart bool, h func(body []byte)) error {
	url, _, err := j.running()
	if err != nil {
		return err
	}
	// Which streams to read and, per stream, which of its topics.
	byStream := make(map[string][]string)
	var order []string
	for _, name := range topics {
		t, err := j.topic(name)
		if err != nil {
			return err
		}
		if _, ok := byStream[t.stream]; !ok {
			order = append(order, t.stream)
		}
		byStream[t.stream] = append(byStream[t.stream], name)
	}
	if len(order) == 0 {
		return errors.New("jetstream: no topics to consume")
	}

	closed := make(chan struct{})
	var closedOnce sync.Once
	nc, err := nats.Connect(url, nats.Name("strata-bench-consumer"), nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { closedOnce.Do(func() { close(closed) }) }))
	if err != nil {
		return fmt.Errorf("jetstream: connect to %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: client: %w", err)
	}

	deliver := jetstream.DeliverNewPolicy
	if fromStart {
		deliver = jetstream.DeliverAllPolicy
	}
	buffer := max(jsConsumeBuffer/len(order), 16)
	var (
		ccs       []jetstream.ConsumeContext
		consumers []struct{ stream, name string }
	)
	defer func() {
		for _, cc := range ccs {
			cc.Stop()
		}
		for _, cc := range ccs {
			<-cc.Closed()
		}
		// Ephemeral consumers would go away after their inactive
		// threshold anyway; deleting them frees the server at once.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, c := range consumers {
			if err := js.DeleteConsumer(dctx, c.stream, c.name); err != nil && !nc.IsClosed() {
				j.log.Debug("delete consumer", "stream", c.stream, "consumer", c.name, "err", err)
			}
		}
	}()
	handler := func(m jetstream.Msg) { h(m.Data()) }
	for _, stream := range order {
		cfg := jetstream.ConsumerConfig{
			DeliverPolicy:     deliver,
			AckPolicy:         jetstream.AckNonePolicy,
			InactiveThreshold: time.Minute,
		}
		if filter := j.filterFor(stream, byStream[stream]); len(filter) > 0 {
			cfg.FilterSubjects = filter
		}
		c, err := js.CreateConsumer(ctx, stream, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return nil // ended before it began
			}
			return fmt.Errorf("jetstream: create consumer on %s: %w", stream, err)
		}
		consumers = append(consumers, struct{ stream, name string }{stream, c.CachedInfo().Name})
		cc, err := c.Consume(handler, jetstream.PullMaxMessages(buffer),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				j.log.Warn("consume", "stream", stream, "err", err)
			}))
		if err != nil {
			return fmt.Errorf("jetstream: consume %s: %w", stream, err)
		}
		ccs = append(ccs, cc)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-closed:
		return errors.New("jetstream: consumer connection closed (server gone?)")
	}
}

// filterFor returns the subject filters that restrict stream to topics, or
// nil when topics are all the stream holds.
func (j *JetStream) filterFor(stream string, topics []string) []string {
	j.mu.Lock()
	n := 0
	for _, t := range j.topics {
		if t.stream == stream {
			n++
		}
	}
	j.mu.Unlock()
	uniq := slices.Compact(slices.Sorted(slices.Values(topics)))
	if len(uniq) >= n {
		return nil
	}
	f := make([]string, len(uniq))
	for i, t := range uniq {
		f[i] = jsSubjectPrefix + "." + t + ".*"
	}
	return f
}

// Pids returns the nats-server process's id while it runs.
func (j *JetStream) Pids() []int {
	j.mu.Lock()
	p := j.proc
	j.mu.Unlock()
	if p == nil || p.done() {
		return nil
	}
	return []int{p.cmd.Process.Pid}
}

// Stop asks nats-server to shut down (SIGTERM), waits for it until ctx
// ends or 10 s pass, and kills it then. Stopping a stopped target does
// nothing.
func (j *JetStream) Stop(ctx context.Context) error {
	j.mu.Lock()
	p, admin := j.proc, j.admin
	j.proc, j.admin, j.js = nil, nil, nil
	j.mu.Unlock()
	if p == nil {
		return nil
	}
	defer p.logFile.Close()
	admin.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		j.log.Warn("signal nats-server", "err", err)
	}
	ctx, cancel := context.WithTimeout(ctx, jsStopTimeout)
	defer cancel()
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
	}
	j.log.Warn("nats-server did not stop in time, killing it", "pid", p.cmd.Process.Pid)
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("jetstream: nats-server did not stop gracefully: %w", ctx.Err())
}

// jsFreePort returns a TCP port on 127.0.0.1 that was free a moment
// ago.
func jsFreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("jetstream: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// jsCheckPort fails clearly when port is taken on 127.0.0.1.
func jsCheckPort(port int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("jetstream: port %d on 127.0.0.1 is taken: %w", port, err)
	}
	return ln.Close()
}

// jsLogTail returns the end of what the server wrote to its log from offset
// from on, at most n bytes.
func jsLogTail(path string, from int64, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || from > int64(len(b)) {
		return ""
	}
	b = bytes.TrimSpace(b[from:])
	if len(b) > n {
		b = append([]byte("…"), b[len(b)-n:]...)
	}
	return string(b)
}
