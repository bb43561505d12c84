package bench

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Options configures a benchmark run. Zero values take the defaults noted
// (smoke-mode defaults in brackets).
type Options struct {
	// Workloads to run, in order; default all (WorkloadNames).
	Workloads []string
	// Duration is each case's measured time: 30s [2s].
	Duration time.Duration
	// Warmup precedes each case's measured time: 5s [500ms].
	Warmup time.Duration
	// Rate is the fixed-rate cases' total rate in messages per second:
	// 50000 [200].
	Rate int
	// Concurrency is the number of concurrent synchronous senders at the
	// maximum rate: 64 [4].
	Concurrency int
	// InFlight bounds the sends in flight at a fixed rate (open loop: a
	// send due while all are busy waits, and its latency counts from when
	// it was due): 256 [16].
	InFlight int
	// MessageSize is the body size in bytes: 1024.
	MessageSize int
	// Topics is topics-10k's number of topics: 10000 [50].
	Topics int
	// BacklogBytes is backlog-drain's preloaded backlog: 1 GiB [8 MiB].
	BacklogBytes int64
	// ColdStartRuns is how many times coldstart execs a client: 50 [3].
	ColdStartRuns int
	// CeilingDuration is how long each ceiling measurement runs: 3s [200ms].
	CeilingDuration time.Duration
	// SkipCeilings leaves out the disk and object store ceilings.
	SkipCeilings bool
	// Smoke runs every workload for seconds at tiny rates, to check that
	// they work (the CI smoke run), changing the defaults above.
	Smoke bool
	// DataDir holds the targets' data (and the disk ceiling's file);
	// default a new directory under the system's temporary directory,
	// removed at the end.
	DataDir string
	// Out is where the report (report.json, SVG charts) goes:
	// ./bench-results.
	Out string
	// Stdout receives the report's tables; Progress the progress line
	// (rewritten in place on a terminal) and notes. Either may be nil.
	Stdout   io.Writer
	Progress io.Writer
	// Command is the command line, recorded in the report.
	Command []string
}

// DefaultRate is the fixed-rate cases' default total rate (msg/s).
const DefaultRate = 50000

// withDefaults returns o with its zero fields set, or an error for
// values out of range.
func (o Options) withDefaults() (Options, error) {
	pick := func(smoke bool, normal, small int) int {
		if smoke {
			return small
		}
		return normal
	}
	if len(o.Workloads) == 0 {
		o.Workloads = WorkloadNames()
	}
	for _, w := range o.Workloads {
		if !IsWorkload(w) {
			return o, fmt.Errorf("unknown workload %q (known: %s, or all)", w, strings.Join(WorkloadNames(), ", "))
		}
	}
	if o.Duration == 0 {
		o.Duration = time.Duration(pick(o.Smoke, 30, 2)) * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = time.Duration(pick(o.Smoke, 5000, 500)) * time.Millisecond
	}
	if o.Rate == 0 {
		o.Rate = pick(o.Smoke, DefaultRate, 200)
	}
	if o.Concurrency == 0 {
		o.Concurrency = pick(o.Smoke, 64, 4)
	}
	if o.InFlight == 0 {
		o.InFlight = pick(o.Smoke, 256, 16)
	}
	if o.MessageSize == 0 {
		o.MessageSize = 1024
	}
	if o.Topics == 0 {
		o.Topics = pick(o.Smoke, 10000, 50)
	}
	if o.BacklogBytes == 0 {
		o.BacklogBytes = int64(pick(o.Smoke, 1<<30, 8<<20))
	}
	if o.ColdStartRuns == 0 {
		o.ColdStartRuns = pick(o.Smoke, 50, 3)
	}
	if o.CeilingDuration == 0 {
		o.CeilingDuration = time.Duration(pick(o.Smoke, 3000, 200)) * time.Millisecond
	}
	if o.Out == "" {
		o.Out = "bench-results"
	}
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.Duration > 0, "duration must be positive")
	check(o.Warmup >= 0, "warm-up must not be negative")
	check(o.Rate > 0, "rate must be positive")
	check(o.Concurrency >= 1 && o.Concurrency <= 4096, "concurrency must be 1..4096")
	check(o.InFlight >= 1 && o.InFlight <= 65536, "in-flight must be 1..65536")
	check(o.MessageSize >= bodyHeader && o.MessageSize <= 4<<20, "message size must be %d bytes to 4 MiB", bodyHeader)
	check(o.Topics >= 1 && o.Topics <= 100000, "topics must be 1..100000")
	check(o.BacklogBytes >= int64(o.MessageSize), "backlog must hold at least one message")
	check(o.ColdStartRuns >= 1, "coldstart runs must be at least 1")
	return o, errors.Join(errs...)
}

// drainIdle is how long consumers may go without receiving anything after
// the window before the case gives up waiting for the rest.
func (o *Options) drainIdle() time.Duration {
	if o.Smoke {
		return 3 * time.Second
	}
	return 10 * time.Second
}

// backlogSegmentSize is the commit-log segment size of backlog-drain's
// Strata (the size of its cold-tier objects).
func (o *Options) backlogSegmentSize() string {
	if o.Smoke {
		return "1MiB"
	}
	return "64MiB"
}

// backlogSealAfter is how old backlog-drain's Strata lets a segment grow
// before sealing it, so that the backlog's last segment goes cold too.
func (o *Options) backlogSealAfter() time.Duration {
	if o.Smoke {
		return 2 * time.Second
	}
	return 10 * time.Second
}

// replicationSegmentSize is the commit-log segment size of the
// replication workload's leader and followers (the same for all, as
// followers need): standalone's default without a cold tier, smaller in
// smoke runs, where four targets preallocate theirs one after the other.
func (o *Options) replicationSegmentSize() string {
	if o.Smoke {
		return "16MiB"
	}
	return "1GiB"
}

// replicationWindow is the warm-up and measured time of the replication
// workload's cases: the options', halved in smoke runs, where it runs its
// four targets one after the other.
func (o *Options) replicationWindow() (warmup, duration time.Duration) {
	if o.Smoke {
		return o.Warmup / 2, o.Duration / 2
	}
	return o.Warmup, o.Duration
}
