// Package client is Strata's Go client: a Producer, a pull Consumer and
// admin helpers that speak RocketMQ 4.x remoting (../shared/PROTOCOL.md) to
// Strata or to any RocketMQ 4.x cluster.
//
// It is built for short-lived processes (command-line tools now, serverless
// functions later): it imports the standard library and remoting only, New
// starts no goroutine, and nothing runs in the background except one reader
// goroutine per open connection (remoting.Conn). Close closes the
// connections and waits for those readers.
//
//	c, err := client.New(client.NameServers("127.0.0.1:9876"))
//	if err != nil { ... }
//	defer c.Close()
//	p, _ := client.NewProducer(c)
//	res, err := p.Send(ctx, client.Message{Topic: "orders", Body: []byte("hi")})
//
// # Routes and connections
//
// A Client asks the name servers for a topic's route (GET_ROUTEINFO_BY_TOPIC)
// the first time it needs it and keeps it for RouteTTL; a failed send drops
// it, so the next send asks again. Requests go to the name servers in turn,
// starting from the one that answered last. The Client keeps one connection
// per address (name server or broker), multiplexed by opaque; a connection
// that closed (idle timeout, broker restart) is dialled again on next use.
//
// # Sending
//
// Producer.Send sends one message with SEND_MESSAGE_V2 and several (of one
// topic) as one SEND_BATCH_MESSAGE to a single queue. Queues are chosen
// round-robin over the writable queues of the route. A send that fails with
// a code rocketmq-client-go retries (SYSTEM_ERROR, SERVICE_NOT_AVAILABLE,
// NO_PERMISSION, TOPIC_NOT_EXIST) or with a transport error is retried on the
// next queue, on another broker when there is one. Delivery is at least
// once: a send whose response was lost may be stored twice.
//
// # Errors
//
// Errors wrap the sentinels of errors.go (ErrTopicNotFound,
// ErrNameServerUnreachable, ErrBrokerUnreachable, ErrClientClosed) or are a
// *ResponseError carrying the code and remark a server answered with;
// errors.Is(err, ErrTopicNotFound) also holds for a TOPIC_NOT_EXIST
// ResponseError.
package client
