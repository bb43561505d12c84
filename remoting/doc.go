// Package remoting implements the parts of Apache RocketMQ's 4.x remoting
// protocol that Strata shares between broker, name server and client: the
// stored/pulled message layout (MessageExt), the properties string, the frame
// codec, the request and response codes, and a multiplexed connection.
//
// It depends on the standard library only, so the serverless client keeps a
// small import graph. Byte layouts are described in ../shared/PROTOCOL.md; all
// multi-byte integers are big-endian.
//
// # Frames
//
// A frame is a 4-byte length, then one byte of serialize type and a 24-bit
// header length, the header, and the body (PROTOCOL.md §1). Command is one
// decoded frame. Strata writes JSON headers (the form rocketmq-client-go
// sends and every client reads) and reads both JSON and the ROCKETMQ binary
// form. Reading is bounded: ReadCommand refuses a length above the limit
// before allocating, and DecodeFrame returns an error wrapping
// ErrMalformedFrame, never a panic, for any input.
//
// # Connections
//
// Conn is used by both ends of a link. Invoke sends a request and waits for
// the response with the same opaque, so any number of requests share one
// connection and their responses may come back in any order; incoming
// requests go to a Handler, called from the connection's only goroutine,
// which answers through Reply now or later. Server accepts connections and
// gives each a Conn; Shutdown closes them and waits for their goroutines.
//
// A peer that sends a frame Strata cannot read gets a RespSystemError
// response naming the problem when the frame's opaque can be read, and the
// connection is closed: after a bad length the stream cannot be resynchronised.
package remoting
