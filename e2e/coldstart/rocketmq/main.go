// Command rocketmq is the rocketmq-client-go half of the cold-start
// benchmark (BenchmarkColdStart in package e2e): the same program as
// ../strata, written with github.com/apache/rocketmq-client-go/v2. It
// starts a producer, sends one message with SendSync and prints, on a line
// "coldstart-ns N", the nanoseconds from COLDSTART_T0_UNIX_NANO to the
// acknowledgement. The client's logging is turned down to errors, as a
// function would configure it.
//
//	rocketmq [namesrv [topic]]
//
// The name server and topic default to STRATA_NAMESRV and STRATA_TOPIC.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart/rocketmq:", err)
		os.Exit(1)
	}
}

func run() error {
	rlog.SetLogLevel("error")
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
	p, err := rocketmq.NewProducer(
		producer.WithNsResolver(primitive.NewPassthroughResolver([]string{namesrv})),
		producer.WithGroupName("coldstart"),
		producer.WithInstanceName("coldstart-"+strconv.Itoa(os.Getpid())),
	)
	if err != nil {
		return fmt.Errorf("new producer: %w", err)
	}
	if err := p.Start(); err != nil {
		return fmt.Errorf("start producer: %w", err)
	}
	defer p.Shutdown()
	r, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte("cold start")))
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if r.Status != primitive.SendOK {
		return fmt.Errorf("send: status %v", r.Status)
	}
	fmt.Printf("coldstart-ns %d\n", time.Now().UnixNano()-t0)
	return nil
}
