package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/client"
)

const produceUsage = `usage: strata produce --topic T [--tag X] [--key K] [--count N [--size B] [--concurrency C]] [--namesrv ADDRS]

Without --count, sends each line of stdin as one message (empty lines are
skipped) and prints one line per message: its id, queue and offset.
With --count, sends N generated messages of --size bytes and prints a
timing report (messages/s, MiB/s, p50/p99 latency).
A topic the name servers do not know is created on the first send when the
broker auto-creates topics (strata standalone does); otherwise create it
with 'strata admin topic create'.

flags:
`

type produceConfig struct {
	ToolConfig
	Topic       string   `env:"TOPIC"`
	Tag         string   `env:"TAG"`
	Key         string   `env:"KEY"`
	Count       int      `env:"COUNT"`
	Size        byteSize `env:"SIZE"`
	Concurrency int      `env:"CONCURRENCY"`
	Group       string   `env:"PRODUCER_GROUP"`
}

func runProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := produceConfig{ToolConfig: defaultClientConfig(), Size: 128, Concurrency: 1, Group: client.DefaultProducerGroup}
	fs := flag.NewFlagSet("strata produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), produceUsage); fs.PrintDefaults() }
	if err := parseToolFlags(&c, fs, args, func(fs *flag.FlagSet) {
		c.flags(fs)
		fs.StringVar(&c.Topic, "topic", c.Topic, "topic to send to (required)")
		fs.StringVar(&c.Tag, "tag", c.Tag, "tag of every message")
		fs.StringVar(&c.Key, "key", c.Key, "key of every message")
		fs.IntVar(&c.Count, "count", c.Count, "send this many generated messages instead of reading stdin")
		fs.Var(&c.Size, "size", "body size of generated messages (with --count)")
		fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "sends in flight at once (with --count)")
		fs.StringVar(&c.Group, "group", c.Group, "producer group")
	}); err != nil {
		return err
	}
	switch {
	case c.Topic == "":
		return usageError(stderr, fs, "--topic is required")
	case c.Count < 0:
		return usageError(stderr, fs, "--count must not be negative")
	case c.Count > 0 && c.Size <= 0:
		return usageError(stderr, fs, "--size must be at least 1 byte")
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return usageError(stderr, fs, "--concurrency must be 1..1024")
	}
	cl, err := c.newClient(stderr)
	if err != nil {
		return err
	}
	defer cl.Close()
	p, err := client.NewProducer(client.WithClient(cl), client.ProducerGroup(c.Group))
	if err != nil {
		return err
	}
	if c.Count > 0 {
		err = c.produceGenerated(ctx, p, stdout)
	} else {
		err = c.produceLines(ctx, p, stdin, stdout)
	}
	return explain(err, &c.ToolConfig, c.Topic)
}

func (c *produceConfig) message(body []byte) client.Message {
	m := client.Message{Topic: c.Topic, Body: body, Tag: c.Tag}
	if c.Key != "" {
		m.Keys = []string{c.Key}
	}
	return m
}

// produceLines sends each non-empty line of stdin, in order, one at a time.
func (c *produceConfig) produceLines(ctx context.Context, p *client.Producer, stdin io.Reader, stdout io.Writer) error {
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), client.DefaultMaxMessageSize+1)
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
		if len(b) == 0 {
			continue
		}
		res, err := p.Send(ctx, c.message(slices.Clone(b)))
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		r := res[0]
		fmt.Fprintf(out, "msgId=%s queue=%s/%d offset=%d\n", r.MsgID, r.BrokerName, r.QueueID, r.QueueOffset)
		if err := out.Flush(); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes, the largest message", line+1, client.DefaultMaxMessageSize)
		}
		return fmt.Errorf("reading stdin: %w", err)
	}
	return nil
}

// produceGenerated sends c.Count messages of c.Size bytes with
// c.Concurrency senders and prints a timing report.
func (c *produceConfig) produceGenerated(ctx context.Context, p *client.Producer, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, c.Count)
		firstErr error
	)
	start := time.Now()
	for range min(c.Concurrency, c.Count) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
			for {
				i := next.Add(1) - 1
				if i >= int64(c.Count) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				if _, err := p.Send(ctx, c.message(generatedBody(i, int(c.Size)))); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("message %d: %w", i, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				mine = append(mine, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return fmt.Errorf("%w (after %d messages sent)", firstErr, len(lat))
	}
	slices.Sort(lat)
	secs := elapsed.Seconds()
	fmt.Fprintf(stdout, "sent %d messages of %d bytes to %s in %v (concurrency %d)\n",
		len(lat), int64(c.Size), c.Topic, elapsed.Round(time.Millisecond), c.Concurrency)
	fmt.Fprintf(stdout, "throughput: %.1f msgs/s, %.2f MiB/s\n",
		float64(len(lat))/secs, float64(len(lat))*float64(c.Size)/secs/(1<<20))
	fmt.Fprintf(stdout, "latency: p50 %v, p99 %v, max %v\n",
		percentile(lat, 0.50).Round(time.Microsecond), percentile(lat, 0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	return nil
}

// generatedBody is message i of a --count run: its decimal number, then
// filler up to size bytes (cut to size when shorter).
func generatedBody(i int64, size int) []byte {
	b := make([]byte, size)
	n := copy(b, strconv.FormatInt(i, 10)+" ")
	for k := n; k < size; k++ {
		b[k] = 'a' + byte(k%26)
	}
	return b
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}
