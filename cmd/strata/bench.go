package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/strata-mq/strata/bench"
	"github.com/strata-mq/strata/internal/miniotest"
	"github.com/strata-mq/strata/internal/provision"
)

const benchUsage = `usage: strata bench [--workload NAME|all] [--duration D] [--rate N] [--peer jetstream|none]
                    [--flush sync|async] [--out DIR] [--smoke] [flags]

Runs OpenMessaging-style workloads against Strata (this binary, as
'strata standalone' on free loopback ports) and, side by side, a peer
broker (NATS JetStream, once with an fsync per write and once with its
default), next to the machine's ceilings: the disk's O_DIRECT + fdatasync
write speed (and fio's, when installed) and MinIO's raw GETs. MinIO and
nats-server are built once into the user cache with 'go install' (a few
minutes the first time), so only Go is needed.

workloads:
  1-topic-16-queues-1kb  1 topic, 16 queues, 1 KiB: --rate msg/s, the maximum rate, half of it
  topics-10k             the same total rate over 10,000 topics, and the maximum
  backlog-drain          producers at --rate while a group drains a cold-tier backlog
  coldstart              a client process's exec → first acknowledged send
  replication            1-topic's topic on Strata with 1 copy, then with followers (async
                         2 copies, sync 2 and 3): the maximum rate, and half 1 copy's maximum
                         (Strata only: the peer is not measured)

Writes report.json and SVG latency charts to --out and prints the tables.

flags:
`

type benchConfig struct {
	Workload     string        `env:"BENCH_WORKLOAD"`
	Duration     time.Duration `env:"BENCH_DURATION"`
	Warmup       time.Duration `env:"BENCH_WARMUP"`
	Rate         int           `env:"BENCH_RATE"`
	Concurrency  int           `env:"BENCH_CONCURRENCY"`
	InFlight     int           `env:"BENCH_IN_FLIGHT"`
	Topics       int           `env:"BENCH_TOPICS"`
	Backlog      byteSize      `env:"BENCH_BACKLOG"`
	Runs         int           `env:"BENCH_COLDSTART_RUNS"`
	Peer         string        `env:"BENCH_PEER"`
	Flush        string        `env:"FLUSH"`
	Out          string        `env:"BENCH_OUT"`
	DataDir      string        `env:"BENCH_DATA_DIR"`
	Smoke        bool          `env:"BENCH_SMOKE"`
	SkipCeilings bool          `env:"BENCH_SKIP_CEILINGS"`
	StrataBin    string        `env:"BENCH_STRATA_BIN"`
	NATSServer   string        `env:"BENCH_NATS_SERVER"`
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := benchConfig{Workload: "all", Peer: "jetstream", Flush: "sync", Out: "bench-results"}
	fs := flag.NewFlagSet("strata bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), benchUsage); fs.PrintDefaults() }
	if err := parseToolFlags(&c, fs, args, func(fs *flag.FlagSet) {
		fs.StringVar(&c.Workload, "workload", c.Workload, "workload to run, comma-separated list, or all")
		fs.DurationVar(&c.Duration, "duration", c.Duration, "measured time of each case (default 30s; --smoke 2s)")
		fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "warm-up before each case's measured time (default 5s; --smoke 500ms)")
		fs.IntVar(&c.Rate, "rate", c.Rate, "fixed-rate cases' total rate, msg/s (default 50000; --smoke 200)")
		fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "synchronous senders at the maximum rate (default 64)")
		fs.IntVar(&c.InFlight, "in-flight", c.InFlight, "most sends in flight at a fixed rate (default 256)")
		fs.IntVar(&c.Topics, "topics", c.Topics, "topics of topics-10k (default 10000; --smoke 50)")
		fs.Var(&c.Backlog, "backlog", "backlog-drain's preloaded backlog (default 1GiB; --smoke 8MiB)")
		fs.IntVar(&c.Runs, "coldstart-runs", c.Runs, "execs of the coldstart workload (default 50)")
		fs.StringVar(&c.Peer, "peer", c.Peer, "peer broker run side by side: jetstream or none")
		fs.StringVar(&c.Flush, "flush", c.Flush, "Strata's --flush: sync or async")
		fs.StringVar(&c.Out, "out", c.Out, "directory for report.json and the SVG charts")
		fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the brokers' data and the disk ceiling (default: a new temporary directory)")
		fs.BoolVar(&c.Smoke, "smoke", c.Smoke, "seconds per workload at tiny rates: checks that the bench works, measures nothing")
		fs.BoolVar(&c.SkipCeilings, "skip-ceilings", c.SkipCeilings, "do not measure the disk and object store ceilings")
		fs.StringVar(&c.StrataBin, "strata-bin", c.StrataBin, "strata binary to benchmark (default: this one)")
		fs.StringVar(&c.NATSServer, "nats-server", c.NATSServer, "nats-server binary (default: built into the user cache)")
	}); err != nil {
		return err
	}
	var workloads []string
	if c.Workload != "all" {
		for _, w := range strings.Split(c.Workload, ",") {
			w = strings.TrimSpace(w)
			if w == "" {
				continue
			}
			if !bench.IsWorkload(w) {
				return usageError(stderr, fs, "unknown workload %q (known: %s, or all)", w, strings.Join(bench.WorkloadNames(), ", "))
			}
			workloads = append(workloads, w)
		}
	}
	if c.Flush != "sync" && c.Flush != "async" {
		return usageError(stderr, fs, "--flush %q: want sync or async", c.Flush)
	}
	if c.Peer != "jetstream" && c.Peer != "none" {
		return usageError(stderr, fs, "--peer %q: want jetstream or none", c.Peer)
	}
	if err := checkBenchDeps(c, workloads); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	factories := []bench.TargetFactory{bench.StrataFactory(bench.StrataOptions{Binary: c.StrataBin, Flush: c.Flush, Logf: logf})}
	if c.Peer == "jetstream" {
		for _, always := range []bool{true, false} {
			o := bench.JetStreamOptions{SyncAlways: always, Binary: c.NATSServer, Logger: logger}
			factories = append(factories, func(bench.TargetNeeds) (bench.Target, error) { return bench.NewJetStream(o), nil })
		}
	}
	_, err := bench.Run(ctx, bench.Options{
		Workloads: workloads, Duration: c.Duration, Warmup: c.Warmup, Rate: c.Rate, Concurrency: c.Concurrency,
		InFlight: c.InFlight, Topics: c.Topics, BacklogBytes: int64(c.Backlog), ColdStartRuns: c.Runs,
		Smoke: c.Smoke, SkipCeilings: c.SkipCeilings, DataDir: c.DataDir, Out: c.Out,
		Stdout: stdout, Progress: stderr, Command: append([]string{"strata", "bench"}, args...),
	}, factories)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("bench interrupted; the report so far is in %s", c.Out)
	}
	return err
}

// checkBenchDeps fails early, with advice, when a server the run needs is
// neither in the user cache nor buildable (no go command).
func checkBenchDeps(c benchConfig, workloads []string) error {
	if _, err := exec.LookPath("go"); err == nil {
		return nil
	}
	needMinio := len(workloads) == 0
	for _, w := range workloads {
		needMinio = needMinio || w == bench.BacklogDrain
	}
	var missing []string
	if needMinio {
		if dir, err := miniotest.CacheDir(); err != nil || !isFile(dir+"/minio") {
			missing = append(missing, "go not found to build minio (backlog-drain's cold tier): install Go, or leave out --workload backlog-drain")
		}
	}
	if c.Peer == "jetstream" && c.NATSServer == "" {
		if dir, err := provision.CacheDir("nats-server", bench.NATSServerVersion); err != nil || !isFile(dir+"/nats-server") {
			missing = append(missing, "go not found to build nats-server (the JetStream peer): install Go, pass --nats-server PATH, or --peer none")
		}
	}
	if len(missing) > 0 {
		return errors.New(strings.Join(missing, "; "))
	}
	return nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
