// Package client is Strata's Go client: a Producer, a Consumer and admin
// helpers that speak RocketMQ 4.x remoting (../shared/PROTOCOL.md) to
// Strata or to any RocketMQ 4.x cluster.
//
// It is built for short-lived processes, serverless functions among them:
// it imports the standard library, remoting and caarlos0/env only, logs
// nothing unless given a Logger, and neither New nor NewProducer connects
// or starts a goroutine. Nothing runs in the background except one reader
// goroutine per open connection (remoting.Conn) and, while SendAsync calls
// are pending, one goroutine each. Close stops them all.
//
//	// Once per process (outside a function's handler):
//	p, err := client.NewProducer(client.NameServers("10.0.0.1:9876"), client.ProducerGroup("orders"))
//	if err != nil { ... }
//	defer p.Close(context.Background())
//	// Per request:
//	res, err := p.Send(ctx, client.Message{Topic: "orders", Body: []byte("hi")})
//
// A Producer or Consumer makes its own Client from the client options it is
// given (NameServers, DialTimeout, RequestTimeout, RouteTTL,
// IdleConnTimeout, ClientID, WithCredentials, Logger). To share
// connections and routes between producers, consumers and admin calls,
// make a Client with New and pass it with WithClient.
//
//	// Consuming in a function: join, read, commit, leave.
//	cs, err := client.NewConsumer(client.ConsumerGroup("billing"), client.Subscribe("orders", "*"))
//	if err != nil { ... }
//	defer cs.Close(ctx)
//	msgs, err := cs.Receive(ctx, 100)
//	... process msgs ...
//	err = cs.Commit(ctx)
//
// # Configuration
//
// New and NewProducer read these environment variables (parsed with
// caarlos0/env); an option given in code wins over its variable, and a
// variable over the default; an empty variable counts as unset:
//
//	STRATA_NAMESRV          name servers, "host:port;host:port" (NameServers)
//	STRATA_CLIENT_ID        the client's id (ClientID)
//	STRATA_DIAL_TIMEOUT     TCP connect timeout, "3s" (DialTimeout)
//	STRATA_REQUEST_TIMEOUT  request timeout (RequestTimeout)
//	STRATA_ROUTE_TTL        route cache lifetime (RouteTTL)
//	STRATA_SEND_TIMEOUT     timeout of one send attempt (SendTimeout)
//	STRATA_PRODUCER_GROUP   producer group (ProducerGroup)
//	STRATA_CONSUMER_GROUP   consumer group (ConsumerGroup)
//	STRATA_ACCESS_KEY       ACL access key (WithCredentials)
//	STRATA_SECRET_KEY       ACL secret key (WithCredentials)
//	STRATA_SECURITY_TOKEN   ACL security token (WithCredentials)
//
// A value that does not parse, or is out of range, makes New or
// NewProducer fail.
//
// # Routes and connections
//
// A Client asks the name servers for a topic's route (GET_ROUTEINFO_BY_TOPIC)
// the first time it needs it and keeps it for RouteTTL; a failed send drops
// it, so the next send asks again. Requests go to the name servers in turn,
// starting from the one that answered last. The Client keeps one connection
// per address (name server or broker), multiplexed by opaque, so that
// concurrent requests (SendAsync) pipeline over it.
//
// Connections go stale while a process is frozen between invocations: the
// broker closes idle connections, NAT gateways forget them, and the frozen
// process notices only on its next write. The Client therefore replaces
// a connection that closed, and one unused for longer than IdleConnTimeout,
// before using it; sends a request again, once, on a new connection when a
// reused connection fails under it; and closes a connection on which a
// request timed out without any response arriving meanwhile (a half-open
// connection whose peer is gone), so that the next request dials afresh. A
// request over a half-open connection waits no longer than its timeout.
//
// # Sending
//
// Producer.Send sends one message with SEND_MESSAGE_V2 and several (of one
// topic) as one SEND_BATCH_MESSAGE to a single queue, and returns each
// message's queue, offset and id. Producer.SendAsync does the same without
// waiting, calling back with the result; at most MaxInFlight are pending,
// and Producer.Close waits for them. Queues are chosen round-robin over the
// writable queues of the route. A send that fails with a code
// rocketmq-client-go retries (SYSTEM_ERROR, SERVICE_NOT_AVAILABLE,
// NO_PERMISSION, TOPIC_NOT_EXIST) or with a transport error is retried on
// the next queue (SendRetries), on another broker when there is one.
// Brokers that just failed (unreachable, timed out, busy or failing) or
// answered slowly are then avoided by every producer of the Client for a
// while: 1 s after a failure, doubling with each further one up to 30 s,
// and 5 to 30 s after an answer that took 550 ms or more; round-robin
// skips their queues while another broker's are available.
//
// Delivery is at least once: a send whose response was lost (a timeout, a
// connection that failed after the request was written) is sent again, and
// may then be stored twice. Every message carries a unique id (UNIQ_KEY,
// SendResult.MsgID, MessageExt.MsgID), the same in every attempt, by which
// consumers can detect such duplicates.
//
// # Consuming
//
// A Consumer reads as a member of a consumer group (Receive, Run) or
// queue by queue (Pull and the offset calls). As a member it heartbeats to
// the subscribed topics' brokers (HEART_BEAT, with its client id and
// subscriptions), asks them for the group's members
// (GET_CONSUMER_LIST_BY_GROUP) and takes its share of the queues the way
// RocketMQ clustering consumers do (AllocateMessageQueueAveragely over
// sorted member ids and sorted queues), so Strata and RocketMQ consumers
// can share a group. It rebalances every 20 s and when a broker announces
// a change (NOTIFY_CONSUMER_IDS_CHANGED), and leaves the group on Close
// (UNREGISTER_CLIENT), so the others take its queues at once. Receive
// does this upkeep inside its calls rather than in a goroutine; a
// Consumer that did not call for 90 s, as a frozen function's, rejoins and
// reads the committed offsets again. Offsets are committed explicitly
// (Commit) with Receive, and every 5 s and on exit by Run. Delivery is at
// least once: a queue that changes hands resumes at its last commit.
//
// # Errors
//
// Errors wrap the sentinels of errors.go or are a *ResponseError carrying
// the code and remark a server answered with. errors.Is tells what failed:
// ErrTopicNotFound (also for a TOPIC_NOT_EXIST answer), ErrTimeout (also
// for the caller's context deadline, with context.DeadlineExceeded),
// ErrThrottled (SYSTEM_BUSY), ErrAuth (NO_PERMISSION),
// ErrNameServerUnreachable, ErrBrokerUnreachable, ErrNoQueue and
// ErrClientClosed. Retryable(err) tells whether the same call may succeed
// later.
package client
