package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/remoting"
)

const adminUsage = `usage: strata admin <command> [flags]

commands:
  topic create --topic T [--queues N] [--cluster C]
                     create or update a topic on every broker (of cluster C)
  topic list [--all] list topics (--all includes system topics: TBW102, %RETRY%…)
  topic describe --topic T
                     the topic's brokers and each queue's min/max offsets
  tier status        the cold tier (not built yet)

Each command takes --namesrv (default 127.0.0.1:9876, or STRATA_NAMESRV).
Brokers accept topic changes from loopback peers only until ACLs exist.
`

// errNoTier is the answer of 'admin tier status' until the cold tier exists.
var errNoTier = errors.New("admin tier status: the cold tier is not built yet (tiered storage comes with a later issue): there is nothing to report")

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) >= 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, adminUsage)
		return nil
	}
	if len(args) < 2 {
		fmt.Fprint(stderr, adminUsage)
		return fmt.Errorf("%w: admin needs a command", errUsage)
	}
	switch args[0] + " " + args[1] {
	case "topic create":
		return adminTopicCreate(ctx, args[2:], stdout, stderr)
	case "topic list":
		return adminTopicList(ctx, args[2:], stdout, stderr)
	case "topic describe":
		return adminTopicDescribe(ctx, args[2:], stdout, stderr)
	case "tier status":
		return errNoTier
	}
	fmt.Fprintf(stderr, "strata admin: unknown command %q\n\n%s", strings.Join(args[:2], " "), adminUsage)
	return fmt.Errorf("%w: unknown admin command %q", errUsage, strings.Join(args[:2], " "))
}

func newAdminFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("strata admin "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), adminUsage+"\nflags of "+name+":\n")
		fs.PrintDefaults()
	}
	return fs
}

type adminTopicConfig struct {
	ToolConfig
	Topic   string `env:"TOPIC"`
	Queues  int    `env:"QUEUES"`
	Cluster string `env:"CLUSTER"`
	All     bool   `env:"ALL"`
}

func adminTopicCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := adminTopicConfig{ToolConfig: defaultClientConfig(), Queues: 4}
	fs := newAdminFlags("topic create", stderr)
	if err := parseToolFlags(&c, fs, args, func(fs *flag.FlagSet) {
		c.flags(fs)
		fs.StringVar(&c.Topic, "topic", c.Topic, "topic to create or update (required)")
		fs.IntVar(&c.Queues, "queues", c.Queues, "read and write queues on each broker, 1..1024")
		fs.StringVar(&c.Cluster, "cluster", c.Cluster, "only the brokers of this cluster (default: every broker)")
	}); err != nil {
		return err
	}
	if c.Topic == "" {
		return usageError(stderr, fs, "--topic is required")
	}
	if c.Queues < 1 || c.Queues > 1024 {
		return usageError(stderr, fs, "--queues must be 1..1024")
	}
	cl, err := c.newClient(stderr)
	if err != nil {
		return err
	}
	defer cl.Close()
	err = cl.CreateTopic(ctx, client.TopicConfig{Name: c.Topic, ReadQueues: c.Queues, WriteQueues: c.Queues, Cluster: c.Cluster})
	if err != nil {
		return explain(err, &c.ToolConfig, c.Topic)
	}
	r, err := cl.Route(ctx, c.Topic)
	if err != nil {
		return explain(err, &c.ToolConfig, c.Topic)
	}
	var names []string
	for _, q := range r.Queues {
		names = append(names, q.BrokerName)
	}
	fmt.Fprintf(stdout, "topic %s: %d queues on %s\n", c.Topic, c.Queues, strings.Join(names, ", "))
	return nil
}

func adminTopicList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := adminTopicConfig{ToolConfig: defaultClientConfig()}
	fs := newAdminFlags("topic list", stderr)
	if err := parseToolFlags(&c, fs, args, func(fs *flag.FlagSet) {
		c.flags(fs)
		fs.BoolVar(&c.All, "all", c.All, "include system topics (TBW102, %RETRY%…, %DLQ%…)")
	}); err != nil {
		return err
	}
	cl, err := c.newClient(stderr)
	if err != nil {
		return err
	}
	defer cl.Close()
	topics, err := cl.ListTopics(ctx)
	if err != nil {
		return explain(err, &c.ToolConfig, "")
	}
	for _, t := range topics {
		if c.All || !client.IsSystemTopic(t) {
			fmt.Fprintln(stdout, t)
		}
	}
	return nil
}

func adminTopicDescribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := adminTopicConfig{ToolConfig: defaultClientConfig()}
	fs := newAdminFlags("topic describe", stderr)
	if err := parseToolFlags(&c, fs, args, func(fs *flag.FlagSet) {
		c.flags(fs)
		fs.StringVar(&c.Topic, "topic", c.Topic, "topic to describe (required)")
	}); err != nil {
		return err
	}
	if c.Topic == "" {
		return usageError(stderr, fs, "--topic is required")
	}
	cl, err := c.newClient(stderr)
	if err != nil {
		return err
	}
	defer cl.Close()
	info, err := cl.DescribeTopic(ctx, c.Topic)
	if err != nil {
		return explain(err, &c.ToolConfig, c.Topic)
	}
	fmt.Fprintf(stdout, "topic %s\n\n", c.Topic)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BROKER\tCLUSTER\tREAD\tWRITE\tPERM\tADDRESSES")
	for _, q := range info.Route.Queues {
		b, _ := info.Route.Broker(q.BrokerName)
		var addrs []string
		for _, id := range slices.Sorted(maps.Keys(b.Addrs)) {
			addrs = append(addrs, strconv.FormatInt(id, 10)+"="+b.Addrs[id])
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", q.BrokerName, b.Cluster, q.ReadQueueNums, q.WriteQueueNums, permString(q.Perm), strings.Join(addrs, " "))
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BROKER\tQUEUE\tMIN\tMAX\tMESSAGES")
	var total int64
	for _, q := range info.Queues {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", q.BrokerName, q.QueueID, q.MinOffset, q.MaxOffset, q.MaxOffset-q.MinOffset)
		total += q.MaxOffset - q.MinOffset
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d messages in %d queues\n", total, len(info.Queues))
	return nil
}

// permString renders permission bits as r, w, rw (plus flags).
func permString(p int) string {
	var s string
	if int32(p)&remoting.PermRead != 0 {
		s += "r"
	}
	if int32(p)&remoting.PermWrite != 0 {
		s += "w"
	}
	if s == "" {
		s = "-"
	}
	return s
}
