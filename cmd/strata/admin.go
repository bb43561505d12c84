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
	"time"

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
  tier status [--cluster C] [--all]
                     each broker's cold tier: objects, bytes, upload lag,
                     last error, its tier readers and how far they see,
                     and per queue the cold and hot ranges and the hot
                     start the name servers route by (--all includes
                     system topics)

  cluster status [--cluster C]
                     each broker group: its leader, followers and tier
                     readers, the epoch, the in-sync copies, and each
                     follower's replication lag in bytes and time

Each command takes --namesrv (default 127.0.0.1:9876, or STRATA_NAMESRV).
Brokers accept topic changes from loopback peers only until ACLs exist.
`

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
		return adminTierStatus(ctx, args[2:], stdout, stderr)
	case "cluster status":
		return adminClusterStatus(ctx, args[2:], stdout, stderr)
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

// eachGroup parses a per-group command's flags (--cluster, and more from
// extra) and calls fn for each broker name (of --cluster), in name order.
func eachGroup(ctx context.Context, cmd string, args []string, stderr io.Writer, extra func(*flag.FlagSet, *adminTopicConfig),
	fn func(cl *client.Client, c *adminTopicConfig, name string, bd client.BrokerData) error) error {
	c := adminTopicConfig{ToolConfig: defaultClientConfig()}
	fs := newAdminFlags(cmd, stderr)
	if err := parseToolFlags(&c, fs, args, func(fs *flag.FlagSet) {
		c.flags(fs)
		fs.StringVar(&c.Cluster, "cluster", c.Cluster, "only brokers of this cluster")
		if extra != nil {
			extra(fs, &c)
		}
	}); err != nil {
		return err
	}
	cl, err := c.newClient(stderr)
	if err != nil {
		return err
	}
	defer cl.Close()
	ci, err := cl.ClusterInfo(ctx)
	if err != nil {
		return explain(err, &c.ToolConfig, "")
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(ci.Brokers)) {
		if bd := ci.Brokers[name]; c.Cluster == "" || bd.Cluster == c.Cluster {
			if err := fn(cl, &c, name, bd); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func adminTierStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	all := func(fs *flag.FlagSet, c *adminTopicConfig) {
		fs.BoolVar(&c.All, "all", c.All, "include system topics (TBW102, %RETRY%…, %DLQ%…)")
	}
	return eachGroup(ctx, "tier status", args, stderr, all, func(cl *client.Client, c *adminTopicConfig, name string, bd client.BrokerData) error {
		return tierStatusOf(ctx, cl, c, name, bd, stdout)
	})
}

func tierStatusOf(ctx context.Context, cl *client.Client, c *adminTopicConfig, name string, bd client.BrokerData, stdout io.Writer) error {
	addr := bd.LeaderAddr()
	if addr == "" {
		return nil
	}
	st, err := cl.TierStatus(ctx, addr)
	if err != nil {
		return fmt.Errorf("broker %s (%s): %w", name, addr, err)
	}
	fmt.Fprintf(stdout, "broker %s (cluster %s, %s)\n", name, st.Cluster, addr)
	if !st.Enabled || st.Tier == nil {
		fmt.Fprintln(stdout, "  cold tier: off (no --tier)")
	} else {
		t := st.Tier
		fmt.Fprintf(stdout, "  cold tier: %d objects, %d bytes, log offloaded up to %d; ready=%v\n", t.Objects, t.Bytes, t.EndOffset, t.Ready)
		fmt.Fprintf(stdout, "  upload lag: %d segments, %d bytes; cache hit ratio %.2f\n", t.PendingSegments, t.PendingBytes, t.CacheHitRatio)
		if t.LastError != "" {
			fmt.Fprintf(stdout, "  last error (%s): %s\n", t.LastErrorAt.Format(time.RFC3339), t.LastError)
		}
	}
	for _, id := range bd.Readers() {
		raddr := bd.Addrs[id]
		rs, err := cl.TierStatus(ctx, raddr)
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "  reader %d (%s): %v\n", id, raddr, err)
		case rs.Tier == nil:
			fmt.Fprintf(stdout, "  member %d (%s): no cold tier\n", id, raddr)
		default:
			fmt.Fprintf(stdout, "  reader %d (%s): sees the log offloaded up to %d\n", id, raddr, rs.Tier.EndOffset)
		}
	}
	// The name servers' view: the hot starts routes give clients.
	routed := map[string]*client.Route{}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TOPIC\tQUEUE\tCOLD\tHOT\tROUTED HOT START")
	for _, q := range st.Queues {
		if !c.All && client.IsSystemTopic(q.Topic) {
			continue
		}
		cold, hot, rhs := "-", "-", "-"
		if q.ColdNext > q.ColdFirst {
			cold = fmt.Sprintf("[%d, %d)", q.ColdFirst, q.ColdNext)
		}
		if q.HotMax > q.HotMin {
			hot = fmt.Sprintf("[%d, %d)", q.HotMin, q.HotMax)
		}
		r, ok := routed[q.Topic]
		if !ok {
			r, _ = cl.Route(ctx, q.Topic) // nil: no route (yet)
			routed[q.Topic] = r
		}
		if r != nil {
			if hs, ok := r.HotStart[name][int(q.QueueID)]; ok {
				rhs = strconv.FormatInt(hs, 10)
			}
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", q.Topic, q.QueueID, cold, hot, rhs)
	}
	tw.Flush()
	return nil
}

func adminClusterStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return eachGroup(ctx, "cluster status", args, stderr, nil, func(cl *client.Client, _ *adminTopicConfig, name string, bd client.BrokerData) error {
		return clusterStatusOf(ctx, cl, name, bd, stdout)
	})
}

// clusterStatusOf prints one broker group's replication state.
func clusterStatusOf(ctx context.Context, cl *client.Client, name string, bd client.BrokerData, stdout io.Writer) error {
	var lead *client.ReplicationStatus
	var err error
	if addr := bd.LeaderAddr(); addr != "" {
		st, serr := cl.ReplicationStatus(ctx, addr)
		if serr != nil {
			err = fmt.Errorf("broker %s leader (%s): %w", name, addr, serr)
		} else {
			lead = &st
		}
	}
	fmt.Fprintf(stdout, "group %s (cluster %s)\n", name, bd.Cluster)
	if lead == nil {
		fmt.Fprintln(stdout, "  no live leader")
	} else {
		fmt.Fprintf(stdout, "  leader %s, epoch %d, log [%d, %d), replication %s, in sync %d of min %d\n",
			lead.Addr, lead.Epoch, lead.LogStart, lead.LogEnd, lead.Replication, lead.InSync, lead.MinInSync)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tROLE\tADDR\tLOG END\tLAG BYTES\tLAG\tIN SYNC")
	for _, id := range slices.Sorted(maps.Keys(bd.Addrs)) {
		addr := bd.Addrs[id]
		st, serr := cl.ReplicationStatus(ctx, addr)
		if serr != nil {
			fmt.Fprintf(tw, "  %d\t?\t%s\t-\t-\t-\t%v\n", id, addr, serr)
			continue
		}
		lagB, lag, insync := "-", "-", "-"
		switch {
		case st.Role == "leader":
			insync = "yes"
		case lead != nil && st.Role == "follower":
			insync = "no"
			for _, f := range lead.Followers {
				if f.ID == st.BrokerID {
					lagB = strconv.FormatInt(f.LagBytes, 10)
					lag = (time.Duration(f.LagMillis) * time.Millisecond).String()
					if f.InSync {
						insync = "yes"
					}
				}
			}
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%d\t%s\t%s\t%s\n", id, st.Role, addr, st.LogEnd, lagB, lag, insync)
	}
	tw.Flush()
	return err
}
