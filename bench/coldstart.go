package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/strata-mq/strata/client"
)

// ColdStartChildCommand is the hidden strata subcommand the coldstart
// workload execs: `strata bench-coldstart-child --namesrv ADDR --topic T`.
const ColdStartChildCommand = "bench-coldstart-child"

// ColdStartChild is the body of ColdStartChildCommand: it makes a
// client.Producer, sends one message to the topic, waits for its
// acknowledgement and returns, so that the parent's exec → exit time is a
// client's cold start, first acknowledged send included.
func ColdStartChild(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(ColdStartChildCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	namesrv := fs.String("namesrv", client.DefaultNameServer, "name servers")
	topic := fs.String("topic", "", "topic to send to")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *topic == "" {
		return errors.New("--topic is required")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	p, err := client.NewProducer(client.NameServers(*namesrv), client.ProducerGroup("strata-bench-coldstart"))
	if err != nil {
		return err
	}
	defer p.Close(ctx)
	if _, err := p.Send(ctx, client.Message{Topic: *topic, Body: []byte("cold start")}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// ColdStartResult is the coldstart workload's outcome for one target.
type ColdStartResult struct {
	Runs    int    `json:"runs"`
	Command string `json:"command"`
	// BinaryBytes is the size of the executable the child runs.
	BinaryBytes int64 `json:"binary_bytes"`
	// Exec → exit with success, in milliseconds.
	MinMs    float64   `json:"min_ms"`
	MedianMs float64   `json:"median_ms"`
	P99Ms    float64   `json:"p99_ms"`
	MaxMs    float64   `json:"max_ms"`
	AllMs    []float64 `json:"all_ms"`
}

// coldStartOnce execs argv and returns the time from just before the exec
// to its successful exit.
func coldStartOnce(ctx context.Context, argv []string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w\n%s", joinArgs(argv), err, tail(out.String(), 2000))
	}
	return time.Since(start), nil
}

// coldStartStats orders the runs and computes their figures.
func coldStartStats(ds []time.Duration) ColdStartResult {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r := ColdStartResult{Runs: len(ds)}
	if len(ds) == 0 {
		return r
	}
	for _, d := range ds {
		r.AllMs = append(r.AllMs, ms(d))
	}
	r.MinMs, r.MaxMs = ms(ds[0]), ms(ds[len(ds)-1])
	r.MedianMs = ms(ds[len(ds)/2])
	if len(ds)%2 == 0 {
		r.MedianMs = (ms(ds[len(ds)/2-1]) + ms(ds[len(ds)/2])) / 2
	}
	r.P99Ms = ms(ds[min(len(ds)-1, (len(ds)*99+99)/100-1)])
	return r
}

// runColdStart execs the target's cold-start command runs times (after
// one unmeasured run, so that neither the page cache nor the broker's
// first touch of the topic is in the numbers).
func runColdStart(ctx context.Context, t Target, cs ColdStarter, runs int, topic string, progress *progressLine) (*ColdStartResult, error) {
	if err := t.CreateTopics(ctx, []string{topic}, 4); err != nil {
		return nil, err
	}
	argv := cs.ColdStartCommand(topic)
	if _, err := coldStartOnce(ctx, argv); err != nil {
		return nil, fmt.Errorf("coldstart: %w", err)
	}
	var ds []time.Duration
	for i := range runs {
		d, err := coldStartOnce(ctx, argv)
		if err != nil {
			return nil, fmt.Errorf("coldstart run %d: %w", i+1, err)
		}
		ds = append(ds, d)
		progress.update(fmt.Sprintf("%s  coldstart %d/%d  last %.1f ms", t.Name(), i+1, runs, float64(d)/float64(time.Millisecond)))
	}
	progress.done()
	r := coldStartStats(ds)
	r.Command = joinArgs(argv)
	if fi, err := os.Stat(argv[0]); err == nil {
		r.BinaryBytes = fi.Size()
	}
	return &r, nil
}
