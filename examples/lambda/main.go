// Command lambda is an AWS Lambda function that produces one message per
// invocation to Strata (or any RocketMQ 4.x cluster) with the client
// package.
//
// The Producer is made once, when the function's execution environment
// starts, and reused by every invocation that environment serves; a
// connection that went stale while the environment was frozen is
// replaced by the client on the next send. Configuration comes from the
// environment:
//
//	STRATA_NAMESRV  name servers, "host:port;host:port" (required)
//	STRATA_TOPIC    the topic to produce to (required)
//
// and the client's other STRATA_* variables (see the client package).
//
// Each invocation's event (any JSON) becomes the message body, keyed by
// the invocation's request id; the function returns where the message was
// stored. Delivery is at least once: a send the client retried, or an
// invocation Lambda retried, may store the message twice, and consumers
// can tell the copies apart by key or MsgID.
//
// Build for the provided.al2023 runtime:
//
//	GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -o bootstrap ./examples/lambda
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/strata-mq/strata/client"
)

// Result is what an invocation returns: where the message was stored.
type Result struct {
	MsgID  string `json:"msgId"`
	Topic  string `json:"topic"`
	Broker string `json:"broker"`
	Queue  int    `json:"queue"`
	Offset int64  `json:"offset"`
	// Status is SEND_OK, or how the broker stored the message without the
	// durability asked for (FLUSH_DISK_TIMEOUT, …).
	Status string `json:"status"`
}

// producer and topic are set up once per execution environment, outside
// the handler.
var (
	producer *client.Producer
	topic    string
)

func main() {
	topic = os.Getenv("STRATA_TOPIC")
	if topic == "" {
		slog.Error("STRATA_TOPIC is not set")
		os.Exit(1)
	}
	var err error
	// NewProducer reads STRATA_NAMESRV and the other STRATA_* variables;
	// it neither connects nor starts a goroutine, so this costs nothing
	// until the first invocation.
	if producer, err = client.NewProducer(); err != nil {
		slog.Error("new producer", "err", err)
		os.Exit(1)
	}
	lambda.StartWithOptions(handle, lambda.WithEnableSIGTERM(func() {
		// The environment is shutting down (Lambda kills it 500 ms after
		// SIGTERM): close the connections, within that grace, and go.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_ = producer.Close(ctx)
		cancel()
		os.Exit(0)
	}))
}

// deadlineMargin is kept free at the end of an invocation, so that a send
// that cannot finish fails with its own error, which says whether a retry
// may help, rather than Lambda's timeout.
const deadlineMargin = 250 * time.Millisecond

// handle sends the event as one message. Its error says whether Lambda's
// retry of the invocation may help.
func handle(ctx context.Context, event json.RawMessage) (Result, error) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) > 2*deadlineMargin {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-deadlineMargin))
		defer cancel()
	}
	msg := client.Message{Topic: topic, Body: event}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		msg.Keys = []string{lc.AwsRequestID}
	}
	res, err := producer.Send(ctx, msg)
	if err != nil {
		return Result{}, &sendError{err: err, retryable: client.Retryable(err)}
	}
	r := res[0]
	return Result{MsgID: r.MsgID, Topic: r.Topic, Broker: r.BrokerName, Queue: r.QueueID, Offset: r.QueueOffset,
		Status: r.Status.String()}, nil
}

// sendError is a failed send; Lambda reports its type name, sendError, and
// its message, which says whether a retry may help. It unwraps to the
// client's error, so errors.Is finds the client's sentinels.
type sendError struct {
	err       error
	retryable bool
}

func (e *sendError) Error() string {
	if e.retryable {
		return fmt.Sprintf("send (retryable): %v", e.err)
	}
	return fmt.Sprintf("send (not retryable): %v", e.err)
}

func (e *sendError) Unwrap() error { return e.err }
