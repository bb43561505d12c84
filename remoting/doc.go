// Package remoting implements the parts of Apache RocketMQ's 4.x remoting
// protocol that Strata shares between broker, name server and client: the
// stored/pulled message layout (MessageExt), the properties string and, as the
// broker issue lands, the frame codec and request/response headers.
//
// It depends on the standard library only, so the serverless client keeps a
// small import graph. Byte layouts are described in ../shared/PROTOCOL.md; all
// multi-byte integers are big-endian.
package remoting
