// Command strata is the Strata-client half of the cold-start benchmark
// (BenchmarkColdStart in package e2e): it creates a client.Producer, sends
// one message synchronously and prints, on a line "coldstart-ns N", the
// nanoseconds from COLDSTART_T0_UNIX_NANO (the parent's clock just before
// it exec'd this process) to the send's acknowledgement, so the number
// includes exec and Go runtime start-up.
//
//	strata [namesrv [topic]]
//
// The name server and topic default to STRATA_NAMESRV and STRATA_TOPIC.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/strata-mq/strata/client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart/strata:", err)
		os.Exit(1)
	}
}

func run() error {
	namesrv, topic := os.Getenv("STRATA_NAMESRV"), os.Getenv("STRATA_TOPIC")
	if len(os.Args) > 1 {
		namesrv = os.Args[1]
	}
	if len(os.Args) > 2 {
		topic = os.Args[2]
	}
	if namesrv == "" || topic == "" {
		return fmt.Errorf("usage: %s namesrv topic (or STRATA_NAMESRV, STRATA_TOPIC)", os.Args[0])
	}
	t0, err := strconv.ParseInt(os.Getenv("COLDSTART_T0_UNIX_NANO"), 10, 64)
	if err != nil {
		return fmt.Errorf("COLDSTART_T0_UNIX_NANO: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := client.NewProducer(client.NameServers(namesrv), client.ProducerGroup("coldstart"))
	if err != nil {
		return fmt.Errorf("new producer: %w", err)
	}
	defer p.Close(ctx)
	if _, err := p.Send(ctx, client.Message{Topic: topic, Body: []byte("cold start")}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	fmt.Printf("coldstart-ns %d\n", time.Now().UnixNano()-t0)
	return nil
}
