package client

import (
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
	// ErrClientClosed is returned by every method once Client.Close has been
	// called.
	ErrClientClosed = errors.New("client: closed")
)

// ResponseError is a response with a failure code from a broker or a name
// server. errors.Is(err, ErrTopicNotFound) holds when Code is
// remoting.RespTopicNotExist.
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

// Is makes errors.Is(err, ErrTopicNotFound) hold for TOPIC_NOT_EXIST.
func (e *ResponseError) Is(target error) bool {
	return target == ErrTopicNotFound && e.Code == remoting.RespTopicNotExist
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
