package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-mq/strata/remoting"
)

var (
	// ErrTopicNotFound: the name servers know no route for the topic (and,
	// for a Producer, none for its CreateTopicKey either), or a broker
	// answered TOPIC_NOT_EXIST. Returned, wrapped, by Route, Producer.Send,
	// the Consumer's methods and DescribeTopic.
	ErrTopicNotFound = errors.New("client: topic does not exist")
	// ErrNameServerUnreachable is wrapped by every error of a request to the
	// name servers when none of them could be reached or answered in time;
	// the text lists each address with its failure.
	ErrNameServerUnreachable = errors.New("client: no name server reachable")
	// ErrBrokerUnreachable is wrapped by the errors of requests to a broker
	// that could not be dialled, whose connection failed, or that did not
	// answer in time.
	ErrBrokerUnreachable = errors.New("client: broker unreachable")
	// ErrNoQueue: a route has no queue that can serve the operation (no
	// writable queue with a live leader for a send; an unknown broker name
	// for a pull).
	ErrNoQueue = errors.New("client: no usable queue")
	// ErrClientClosed is returned by every method once Client.Close (or,
	// for a Producer, Producer.Close) has been called.
	ErrClientClosed = errors.New("client: closed")
	// ErrTimeout is wrapped by the errors of requests that got no answer in
	// time: the request timeout (RequestTimeout, SendTimeout) passed, or the
	// caller's context deadline did (then errors.Is(err,
	// context.DeadlineExceeded) holds too). A timeout says nothing of whether
	// a send was stored. Retryable.
	ErrTimeout = errors.New("client: timed out")
	// ErrThrottled: the broker refused the request because it is
	// overloaded (SYSTEM_BUSY, the flow-control answer of Strata and Java
	// brokers). Retryable after a pause.
	ErrThrottled = errors.New("client: throttled by the broker")
	// ErrAuth: the server refused the request for want of permission
	// (NO_PERMISSION: an ACL denial, or a topic or broker that does not
	// accept the operation, such as a send to a read-only topic). Not
	// retryable without a change of credentials or configuration.
	ErrAuth = errors.New("client: permission denied")
)

// Retryable reports whether the operation that failed with err may succeed
// if tried again later, unchanged: true for timeouts, throttling, an
// unreachable name server or broker, a route without a usable queue, and a
// server's transient failure (SYSTEM_ERROR, SERVICE_NOT_AVAILABLE); false
// for nil, a missing topic, a permission denial, a closed client, a
// cancelled context, an invalid message or option, and any other refusal.
// A retried send may store its message twice (delivery is at least once).
func Retryable(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, ErrClientClosed),
		errors.Is(err, context.Canceled),
		errors.Is(err, ErrTopicNotFound),
		errors.Is(err, ErrAuth):
		return false
	case errors.Is(err, ErrTimeout),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrThrottled),
		errors.Is(err, ErrBrokerUnreachable),
		errors.Is(err, ErrNameServerUnreachable),
		errors.Is(err, ErrNoQueue):
		return true
	}
	var re *ResponseError
	if errors.As(err, &re) {
		switch re.Code {
		case remoting.RespSystemError, remoting.RespServiceNotAvailable:
			return true
		}
	}
	return false
}

// timeoutError wraps a context error: with ErrTimeout when the context's
// deadline passed, alone when it was cancelled.
func timeoutError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrTimeout) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// ResponseError is a response with a failure code from a broker or a name
// server. errors.Is(err, ErrTopicNotFound) holds when Code is
// remoting.RespTopicNotExist, errors.Is(err, ErrThrottled) when it is
// remoting.RespSystemBusy and errors.Is(err, ErrAuth) when it is
// remoting.RespNoPermission.
type ResponseError struct {
	// Op names the request ("SEND_MESSAGE_V2", "PULL_MESSAGE").
	Op string
	// Addr is the server's address.
	Addr string
	// Code is the response code (remoting.Resp*) and Remark its text.
	Code   int16
	Remark string
}

func (e *ResponseError) Error() string {
	msg := fmt.Sprintf("client: %s to %s: %s (code %d)", e.Op, e.Addr, remoting.ResponseCodeName(e.Code), e.Code)
	if e.Remark != "" {
		msg += ": " + e.Remark
	}
	return msg
}

// Is maps response codes onto the sentinels: ErrTopicNotFound for
// TOPIC_NOT_EXIST, ErrThrottled for SYSTEM_BUSY, ErrAuth for NO_PERMISSION.
func (e *ResponseError) Is(target error) bool {
	switch target {
	case ErrTopicNotFound:
		return e.Code == remoting.RespTopicNotExist
	case ErrThrottled:
		return e.Code == remoting.RespSystemBusy
	case ErrAuth:
		return e.Code == remoting.RespNoPermission
	}
	return false
}

func responseError(addr string, req, resp *remoting.Command) *ResponseError {
	return &ResponseError{Op: remoting.RequestCodeName(req.Code), Addr: addr, Code: resp.Code, Remark: resp.Remark}
}

// retryableSend is the producer's retry rule, rocketmq-client-go's
// needRetryCode plus transport failures: SYSTEM_ERROR (a transient broker
// fault), SERVICE_NOT_AVAILABLE (broker shutting down, disk full),
// NO_PERMISSION (the broker's copy of the topic is read-only, another may not
// be), TOPIC_NOT_EXIST (the topic may exist on another broker), and an
// unreachable broker. Anything else (an illegal message, a cancelled
// context) would fail the same way again.
func retryableSend(err error) bool {
	if errors.Is(err, ErrBrokerUnreachable) {
		return true
	}
	var re *ResponseError
	if !errors.As(err, &re) {
		return false
	}
	switch re.Code {
	case remoting.RespSystemError, remoting.RespServiceNotAvailable, remoting.RespNoPermission, remoting.RespTopicNotExist:
		return true
	}
	return false
}
