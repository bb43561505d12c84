// Package bench runs OpenMessaging-style workloads against Strata and a
// peer broker (NATS JetStream), side by side with the machine's ceilings
// (the disk's direct-write speed, the object store's raw GETs), and
// reports throughput, publish and end-to-end latency (HDR histograms), CPU
// time and peak RSS of every server process. `strata bench` drives it.
package bench

import (
	"context"
	"time"
)

// Target is a broker under test: servers it starts itself (processes on
// loopback, their data in a directory it is given), and clients to them.
type Target interface {
	// Name identifies the target and its durability in reports, e.g.
	// "strata flush=sync" or "jetstream sync_interval=always".
	Name() string
	// Start provisions (installing binaries into the user cache when
	// needed) and starts the target's servers with their data under dir,
	// and returns once they accept clients.
	Start(ctx context.Context, dir string) error
	// CreateTopics creates topics, each spread over queues partitions
	// (RocketMQ queues; for JetStream, what the target documents).
	CreateTopics(ctx context.Context, topics []string, queues int) error
	// Producer opens a producer, safe for concurrent use.
	Producer(ctx context.Context) (Producer, error)
	// Consume reads topics, from their first message when fromStart is
	// set and otherwise from their current end, calling h for every
	// message (possibly from several goroutines at once) until ctx is
	// done; it returns once its consumers have stopped.
	Consume(ctx context.Context, topics []string, fromStart bool, h func(body []byte)) error
	// Pids returns the target's server processes, for CPU time and RSS.
	Pids() []int
	// Stop stops the servers and waits for them to exit.
	Stop(ctx context.Context) error
}

// Producer sends messages to a Target.
type Producer interface {
	// Send stores body in topic and returns once the target has
	// acknowledged it, as durably as the target is configured to. The
	// caller reuses body for its next send once Send has returned.
	Send(ctx context.Context, topic string, body []byte) error
	// Close releases the producer's connections.
	Close() error
}

// BatchProducer is a Producer that can also store several messages of one
// topic with one request. backlog-drain's preload uses it, when the
// target's producers offer it, to fill the backlog quickly; the measured
// cases always send one message at a time.
type BatchProducer interface {
	Producer
	// SendBatch stores bodies in topic and returns once the target has
	// acknowledged them all; the caller reuses bodies once it returns.
	SendBatch(ctx context.Context, topic string, bodies [][]byte) error
}

// TargetNeeds tells a TargetFactory what a workload needs of its target.
type TargetNeeds struct {
	// ColdTier: the workload reads a backlog that should live in a cold
	// tier (backlog-drain). Targets without one ignore it.
	ColdTier bool
	// SegmentSize and SealAfter, when set, are what the cold tier's
	// objects should be: the size at which, and the age after which, a
	// log segment is sealed and offloaded (smoke runs make both small).
	// Without a cold tier, SegmentSize is still the log's segment size
	// (replication sets it, so that the leader and its followers run
	// with the same one).
	SegmentSize string
	SealAfter   time.Duration
	// Followers is how many replicas of its log the target should run
	// beside its leader (the replication workload); Replication is how
	// sends wait for them: "async" (acknowledged once the leader holds
	// them) or "sync" (once every copy does). Both are zero for one copy.
	// Targets without replication ignore them and do not implement
	// Replicated, which the workload checks.
	Followers   int
	Replication string
	// Topics are the topics the workload will create, with their queue
	// counts. A target where creating many topics one by one is slow may
	// provision them as it starts; the runner calls CreateTopics for them
	// all the same.
	Topics map[string]int
}

// TargetFactory makes a fresh, unstarted Target for one workload: the
// runner starts it on an empty directory, runs the workload and stops it.
type TargetFactory func(TargetNeeds) (Target, error)

// ColdTier is implemented by targets with a cold tier (Strata with
// TargetNeeds.ColdTier). backlog-drain uses it to wait until its preloaded
// backlog has left the local disk, and to measure the object store's raw
// GET speed next to the drain.
type ColdTier interface {
	// WaitCold waits until the first n messages of topic are in the cold
	// tier only, or ctx ends, and returns the share of them that is.
	WaitCold(ctx context.Context, topic string, n int64) (float64, error)
	// ObjectStore tells how to reach the tier's object store, if any.
	ObjectStore() (ObjectStoreInfo, bool)
}

// ColdStarter is implemented by targets whose client cold start can be
// measured (the coldstart workload): ColdStartCommand returns the argv of
// a fresh process that connects to the target, sends one message to
// topic, waits for its acknowledgement and exits 0.
type ColdStarter interface {
	ColdStartCommand(topic string) []string
}

// Replicated is implemented by targets that run followers when
// TargetNeeds.Followers asks for them (Strata). The replication workload
// measures only such targets.
type Replicated interface {
	// Copies is how many copies of each message the target keeps, its
	// leader's included: TargetNeeds.Followers + 1.
	Copies() int
}

// ProcLabeler is implemented by targets whose server processes play
// different parts (a leader and its followers): ProcLabel names the part
// of process pid, or returns "" when there is nothing to tell.
type ProcLabeler interface {
	ProcLabel(pid int) string
}

// procLabel is pid's name in reports: its command name, and its part in
// t when t tells.
func procLabel(t Target, pid int, name string) string {
	if l, ok := t.(ProcLabeler); ok {
		if part := l.ProcLabel(pid); part != "" {
			return name + " " + part
		}
	}
	return name
}
