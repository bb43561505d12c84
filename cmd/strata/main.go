// Command strata runs every Strata role: name server, broker, everything in
// one process (standalone), and the client tools.
//
//	strata standalone                  name server + broker on 127.0.0.1
//	strata namesrv                     a name server
//	strata broker --namesrv HOST:PORT  a broker
//	strata produce --topic T           send lines from stdin (or --count N)
//	strata consume --topic T --group G print messages
//	strata admin topic create|list|describe
//	strata bench --workload all        benchmarks (see docs/benchmarks.md)
//
// Every flag also reads STRATA_<NAME> (upper case, dashes as underscores);
// flags win over the environment, the environment over defaults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-mq/strata/bench"
)

const usage = `usage: strata <command> [flags]

commands:
  standalone   name server and broker in one process on 127.0.0.1 (no S3 needed)
  namesrv      a name server
  broker       a broker
  produce      send messages (lines of stdin, or --count generated ones)
  consume      print messages
  admin        topic create|list|describe
  bench        workloads side by side with NATS JetStream and the machine's ceilings

Run 'strata <command> -h' for a command's flags. Every flag also reads
STRATA_<NAME>, e.g. --data-dir from STRATA_DATA_DIR.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "strata: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "standalone":
		return runStandalone(ctx, rest, stderr)
	case "namesrv":
		return runNamesrv(ctx, rest, stderr)
	case "broker":
		return runBroker(ctx, rest, stderr)
	case "produce":
		return runProduce(ctx, rest, stdin, stdout, stderr)
	case "consume":
		return runConsume(ctx, rest, stdout, stderr)
	case "admin":
		return runAdmin(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case bench.ColdStartChildCommand: // hidden: the coldstart workload's client
		return bench.ColdStartChild(ctx, rest, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
}
