// Package bench runs OpenMessaging-style workloads against Strata and a
// peer broker (NATS JetStream), side by side with the machine's ceilings
// (the disk's direct-write speed, the object store's raw GETs), and
// reports throughput, publish and end-to-end latency (HDR histograms), CPU
// time and peak RSS of every server process. `strata bench` drives it.
package bench

import (
	"context"
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
	// acknowledged it, as durably as the target is configured to.
	Send(ctx context.Context, topic string, body []byte) error
	// Close releases the producer's connections.
	Close() error
}
