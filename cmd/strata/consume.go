package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/strata-mq/strata/client"
)

const consumeUsage = `usage: strata consume --topic T --group G [--from-offset N | --from-time RFC3339] [--max N] [--wait D] [--namesrv ADDRS]

Prints the body of each message followed by a newline, queue by queue, and
commits the group's offsets as it goes, so the next run of the same group
continues where this one stopped.

Where it starts, on every queue: --from-offset N; or the first message
stored at or after --from-time (RFC 3339, e.g. 2025-01-02T15:04:05Z); or,
by default, the group's committed offset (the oldest message for a group
that has none).

When it stops: after --max messages; otherwise once every queue has been
read to its end (it does not wait for new messages). With --max and too
few messages it waits for more, until --wait passes without a new message
(default: until interrupted). With --wait and no --max it also keeps
waiting until --wait passes without a new message.

flags:
`

type consumeConfig struct {
	ToolConfig
	Topic      string        `env:"TOPIC"`
	Group      string        `env:"GROUP"`
	FromOffset int64         `env:"FROM_OFFSET"`
	FromTime   string        `env:"FROM_TIME"`
	Max        int           `env:"MAX"`
	Wait       time.Duration `env:"WAIT"`
	Tag        string        `env:"TAG"`
}

// consumePollInterval is how often a caught-up consume asks again.
const consumePollInterval = 200 * time.Millisecond

// pullBatch is the most messages asked for in one pull.
const pullBatch = 32

func runConsume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := consumeConfig{ToolConfig: defaultClientConfig(), FromOffset: -1, Tag: "*"}
	fs := flag.NewFlagSet("strata consume", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), consumeUsage); fs.PrintDefaults() }
	if err := parseToolFlags(&c, fs, args, func(fs *flag.FlagSet) {
		c.flags(fs)
		fs.StringVar(&c.Topic, "topic", c.Topic, "topic to read (required)")
		fs.StringVar(&c.Group, "group", c.Group, "consumer group whose offsets are used and committed (required)")
		fs.Int64Var(&c.FromOffset, "from-offset", c.FromOffset, "start every queue at this offset (default: the group's offset)")
		fs.StringVar(&c.FromTime, "from-time", c.FromTime, "start every queue at the first message stored at or after this RFC 3339 time")
		fs.IntVar(&c.Max, "max", c.Max, "stop after this many messages (0: at the end of the available messages)")
		fs.DurationVar(&c.Wait, "wait", c.Wait, "once caught up, wait this long for new messages before stopping")
		fs.StringVar(&c.Tag, "tag", c.Tag, `only messages with these tags ("a||b"; "*" for all)`)
	}); err != nil {
		return err
	}
	var from time.Time
	switch {
	case c.Topic == "":
		return usageError(stderr, fs, "--topic is required")
	case c.Group == "":
		return usageError(stderr, fs, "--group is required")
	case c.FromOffset < -1:
		return usageError(stderr, fs, "--from-offset must not be negative")
	case c.FromOffset >= 0 && c.FromTime != "":
		return usageError(stderr, fs, "--from-offset and --from-time exclude each other")
	case c.Max < 0:
		return usageError(stderr, fs, "--max must not be negative")
	case c.Wait < 0:
		return usageError(stderr, fs, "--wait must not be negative")
	case c.FromTime != "":
		t, err := time.Parse(time.RFC3339Nano, c.FromTime)
		if err != nil {
			return usageError(stderr, fs, "--from-time %q is not an RFC 3339 time such as 2025-01-02T15:04:05Z", c.FromTime)
		}
		from = t
	}
	cl, err := c.newClient(stderr)
	if err != nil {
		return err
	}
	defer cl.Close()
	cs, err := client.NewConsumer(client.WithClient(cl), client.ConsumerGroup(c.Group), client.Subscription(c.Tag))
	if err != nil {
		return err
	}
	return explain(c.consume(ctx, cs, from, stdout), &c.ToolConfig, c.Topic)
}

// queueCursor is where a queue is read from, and what is committed.
type queueCursor struct {
	mq        client.MessageQueue
	offset    int64 // next offset to read
	committed int64 // last offset committed (or found committed)
}

func (c *consumeConfig) consume(ctx context.Context, cs *client.Consumer, from time.Time, stdout io.Writer) error {
	queues, err := cs.Queues(ctx, c.Topic)
	if err != nil {
		return err
	}
	cursors, err := c.startOffsets(ctx, cs, queues, from)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	printed := 0
	lastNew := time.Now()
	for {
		progress := false
		for _, cur := range cursors {
			n, err := c.drain(ctx, cs, cur, out, &printed)
			if err != nil {
				return err
			}
			progress = progress || n > 0
			if c.Max > 0 && printed >= c.Max {
				return nil
			}
		}
		if progress {
			lastNew = time.Now()
			continue
		}
		// Caught up on every queue.
		if c.Max == 0 && c.Wait == 0 {
			return nil
		}
		if c.Wait > 0 && time.Since(lastNew) >= c.Wait {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil // interrupted while waiting: offsets are committed
		case <-time.After(consumePollInterval):
		}
	}
}

// startOffsets finds where each queue starts (see consumeUsage).
func (c *consumeConfig) startOffsets(ctx context.Context, cs *client.Consumer, queues []client.MessageQueue, from time.Time) ([]*queueCursor, error) {
	cursors := make([]*queueCursor, 0, len(queues))
	for _, mq := range queues {
		cur := &queueCursor{mq: mq, committed: -1}
		switch {
		case c.FromOffset >= 0:
			cur.offset = c.FromOffset
		case !from.IsZero():
			off, err := cs.SearchOffset(ctx, mq, from)
			if err != nil {
				return nil, err
			}
			cur.offset = off
		default:
			off, found, err := cs.QueryOffset(ctx, mq)
			if err != nil {
				return nil, err
			}
			if !found {
				if off, err = cs.MinOffset(ctx, mq); err != nil {
					return nil, err
				}
			} else {
				cur.committed = off
			}
			cur.offset = off
		}
		cursors = append(cursors, cur)
	}
	return cursors, nil
}

// drain reads cur's queue to its end (or until --max), prints the bodies
// and commits the offset after each batch. It returns how many messages
// it printed.
func (c *consumeConfig) drain(ctx context.Context, cs *client.Consumer, cur *queueCursor, out *bufio.Writer, printed *int) (int, error) {
	n, moved := 0, 0
	for {
		want := pullBatch
		if c.Max > 0 {
			want = min(want, c.Max-*printed)
		}
		res, err := cs.Pull(ctx, cur.mq, cur.offset, want)
		if err != nil {
			return n, err
		}
		next := res.NextBeginOffset
		before := n
		switch res.Status {
		case client.PullNoNewMsg:
			return n, nil
		case client.PullOffsetIllegal:
			// Continue from where the broker says, but never bounce for ever.
			if moved++; moved > 3 {
				return n, fmt.Errorf("%s: the broker keeps moving offset %d (now to %d)", cur.mq, cur.offset, next)
			}
		case client.PullNoMatchedMsg:
			// Messages skipped by the tag filter: continue after them.
		case client.PullFound:
			for _, m := range res.Messages {
				if c.Max > 0 && *printed >= c.Max {
					next = m.QueueOffset // stop here; the rest is for the next run
					break
				}
				out.Write(m.Body)
				out.WriteByte('\n')
				*printed++
				n++
			}
			if err := out.Flush(); err != nil {
				return n, err
			}
		}
		if next == cur.offset && n == before {
			return n, nil // no progress: treat as the end, never spin
		}
		cur.offset = next
		if cur.offset != cur.committed {
			if err := cs.CommitOffset(ctx, cur.mq, cur.offset); err != nil {
				return n, fmt.Errorf("committing offset %d of %s: %w", cur.offset, cur.mq, err)
			}
			cur.committed = cur.offset
		}
		if c.Max > 0 && *printed >= c.Max {
			return n, nil
		}
	}
}
