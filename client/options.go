package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// Defaults of the options; each option's doc names the one it overrides.
const (
	// DefaultNameServer is the name server of a laptop standalone.
	DefaultNameServer = "127.0.0.1:9876"
	// DefaultDialTimeout bounds a TCP connect.
	DefaultDialTimeout = 3 * time.Second
	// DefaultRequestTimeout bounds a request to a name server or broker
	// when the caller's context has no earlier deadline (rocketmq-client-go
	// uses 3 s for most broker requests, 6 s for routes).
	DefaultRequestTimeout = 5 * time.Second
	// DefaultRouteTTL is how long a route is reused before the name servers
	// are asked again (rocketmq-client-go refreshes every 30 s).
	DefaultRouteTTL = 30 * time.Second
	// DefaultProducerGroup is the producer group sent with messages.
	DefaultProducerGroup = "DEFAULT_PRODUCER"
	// DefaultSendRetries is how many times a failed send is retried (3
	// attempts in all, as rocketmq-client-go).
	DefaultSendRetries = 2
	// DefaultSendTimeout bounds one send attempt.
	DefaultSendTimeout = 3 * time.Second
	// DefaultCreateTopicKey is the template topic whose route a producer
	// uses for a topic the name servers do not know yet, so that brokers
	// with auto-creation create it on the first send.
	DefaultCreateTopicKey = "TBW102"
	// DefaultMaxMessageSize is the largest body (or encoded batch) a
	// producer sends: a Strata or Java broker's default limit.
	DefaultMaxMessageSize = 4 << 20
	// DefaultSubscription is the tag expression of pulls: every message.
	DefaultSubscription = "*"
	// DefaultIdleConnTimeout is how long a connection may sit unused and
	// still be reused: below the 120 s after which Java brokers close idle
	// connections (Strata brokers: 180 s; NAT gateways: 350 s).
	DefaultIdleConnTimeout = 100 * time.Second
	// DefaultMaxInFlight bounds a Producer's pending SendAsync calls.
	DefaultMaxInFlight = 128
)

// Opt configures a Client (New). Every Opt is also a ProducerOpt and a
// ConsumerOpt: given to NewProducer or NewConsumer it configures the Client
// the Producer or Consumer makes for itself.
type Opt interface {
	ProducerOpt
	ConsumerOpt
	apply(*cfg)
}

type clientOpt func(*cfg)

func (f clientOpt) apply(c *cfg) { f(c) }

func (f clientOpt) applyProducer(c *producerCfg) { c.clientOpts = append(c.clientOpts, f) }

func (f clientOpt) applyConsumer(c *consumerCfg) { c.clientOpts = append(c.clientOpts, f) }

// cfg is the Client's configuration, written by New only.
type cfg struct {
	nameServers     []string
	clientID        string
	dialTimeout     time.Duration
	requestTimeout  time.Duration
	routeTTL        time.Duration
	idleConnTimeout time.Duration
	log             *slog.Logger
	creds           Credentials
	tls             *tls.Config // nil: plain TCP
	// dial opens a TCP connection; tests replace it. Nil: net.Dialer.
	dial func(ctx context.Context, addr string) (net.Conn, error)
}

// NameServers sets the name servers, each "host:port", also accepted as
// one "host:port;host:port" string (the --namesrv syntax). An "http://"
// prefix is stripped. Default DefaultNameServer.
func NameServers(addrs ...string) Opt {
	return clientOpt(func(c *cfg) {
		c.nameServers = c.nameServers[:0]
		for _, a := range addrs {
			c.nameServers = append(c.nameServers, SplitAddrs(a)...)
		}
	})
}

// SplitAddrs splits "host:port;host:port" into addresses, dropping empty
// entries, spaces and "http://" prefixes.
func SplitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ";") {
		a = strings.TrimSpace(a)
		a = strings.TrimPrefix(a, "http://")
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

// DialTimeout bounds each TCP connect. Default DefaultDialTimeout.
func DialTimeout(d time.Duration) Opt { return clientOpt(func(c *cfg) { c.dialTimeout = d }) }

// RequestTimeout bounds each request whose context has no earlier deadline.
// Default DefaultRequestTimeout.
func RequestTimeout(d time.Duration) Opt { return clientOpt(func(c *cfg) { c.requestTimeout = d }) }

// RouteTTL is how long a topic's route is reused before the name servers
// are asked again; a failed send forgets it sooner. Default DefaultRouteTTL.
func RouteTTL(d time.Duration) Opt { return clientOpt(func(c *cfg) { c.routeTTL = d }) }

// Logger receives connection events, retries and route changes, mostly at
// debug level. Default: none (nil is silent).
func Logger(l *slog.Logger) Opt { return clientOpt(func(c *cfg) { c.log = l }) }

// ClientID sets the id the client gives brokers to tell its instances
// apart (RocketMQ's clientID, used by consumer groups). Default: made once
// per Client from the host address, the pid and random bytes
// ("10.0.0.7@1#9f3a0c1e"), so that processes sharing a pid and an address
// (serverless sandboxes behind NAT) still differ.
func ClientID(id string) Opt { return clientOpt(func(c *cfg) { c.clientID = id }) }

// WithTLS makes the client connect to name servers and brokers over TLS
// with tc (rocketmq-client-go's WithTls, with verification: set RootCAs
// for a private CA). Default: the environment's STRATA_TLS ("on": the
// system's roots; "insecure": no verification, as rocketmq-client-go
// does) or STRATA_TLS_CA (a PEM file of the CA that signs the servers'
// certificates), else plain TCP.
func WithTLS(tc *tls.Config) Opt { return clientOpt(func(c *cfg) { c.tls = tc }) }

// WithCredentials makes the client sign every request with RocketMQ ACL
// credentials (access key, HMAC-SHA1 signature; see Credentials), for
// brokers and name servers that require them. Default: the environment's
// STRATA_ACCESS_KEY, STRATA_SECRET_KEY and STRATA_SECURITY_TOKEN, else
// none (requests are not signed).
func WithCredentials(cr Credentials) Opt { return clientOpt(func(c *cfg) { c.creds = cr }) }

// IdleConnTimeout makes the client close and redial, rather than reuse, a
// connection that carried no request for longer than d: brokers and NAT
// gateways drop idle connections (Java brokers after 120 s), and a process
// frozen between invocations does not notice until it writes. 0 reuses a
// connection whatever its age (a dead one is still detected and replaced
// on use, see the package doc). Default DefaultIdleConnTimeout.
func IdleConnTimeout(d time.Duration) Opt {
	return clientOpt(func(c *cfg) { c.idleConnTimeout = d })
}

func defaultCfg() cfg {
	return cfg{
		nameServers:     []string{DefaultNameServer},
		dialTimeout:     DefaultDialTimeout,
		requestTimeout:  DefaultRequestTimeout,
		routeTTL:        DefaultRouteTTL,
		idleConnTimeout: DefaultIdleConnTimeout,
	}
}

// bound is one row of a validation table: the value must lie in [lo, hi].
type bound struct {
	name   string
	value  int64
	lo, hi int64
	why    string
}

func checkBounds(rows []bound, more ...error) error {
	errs := more
	for _, r := range rows {
		if r.value < r.lo || r.value > r.hi {
			errs = append(errs, fmt.Errorf("client: %s is %d, want %d..%d (%s)", r.name, r.value, r.lo, r.hi, r.why))
		}
	}
	return errors.Join(errs...)
}

func (c *cfg) validate() error {
	if len(c.nameServers) == 0 {
		return errors.New("client: no name server address (NameServers got nothing)")
	}
	for _, a := range c.nameServers {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return fmt.Errorf("client: name server %q: want host:port", a)
		}
	}
	return checkBounds([]bound{
		// A connect below a millisecond cannot succeed; one above a minute
		// only hides a dead host.
		{"DialTimeout", int64(c.dialTimeout), int64(time.Millisecond), int64(time.Minute), "a connect timeout"},
		// Long polls add their own hold time on top of this.
		{"RequestTimeout", int64(c.requestTimeout), int64(time.Millisecond), int64(10 * time.Minute), "a request timeout"},
		{"RouteTTL", int64(c.routeTTL), 0, int64(24 * time.Hour), "0 asks the name servers before every use"},
		{"IdleConnTimeout", int64(c.idleConnTimeout), 0, int64(24 * time.Hour), "0 reuses connections whatever their age"},
	}, checkClientID(c.clientID))
}

// checkClientID accepts "" (a generated id) or up to 255 printable ASCII
// bytes without spaces.
func checkClientID(id string) error {
	if len(id) > 255 {
		return fmt.Errorf("client: ClientID of %d bytes, longer than 255", len(id))
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return fmt.Errorf("client: ClientID %q: byte %q at %d is not printable ASCII", id, id[i], i)
		}
	}
	return nil
}

// ProducerOpt configures a Producer (NewProducer).
type ProducerOpt interface{ applyProducer(*producerCfg) }

type producerOpt func(*producerCfg)

func (f producerOpt) applyProducer(c *producerCfg) { f(c) }

type producerCfg struct {
	group          string
	retries        int
	sendTimeout    time.Duration
	createTopicKey string
	maxMessageSize int
	maxInFlight    int
	// client is the shared Client of WithClient; nil makes one from
	// clientOpts.
	client     *Client
	clientOpts []Opt
}

// SharedOpt is an option of both producers and consumers.
type SharedOpt interface {
	ProducerOpt
	ConsumerOpt
}

type withClient struct{ c *Client }

func (w withClient) applyProducer(pc *producerCfg) { pc.client = w.c }
func (w withClient) applyConsumer(cc *consumerCfg) { cc.client = w.c }

// WithClient makes the Producer or Consumer work through c, shared with
// other producers and consumers, instead of a Client of its own; their
// Close then leaves c open. It cannot be combined with client options
// (NameServers, Logger, …): those configure c.
func WithClient(c *Client) SharedOpt { return withClient{c} }

// ownClient returns the Client a Producer or Consumer (who) works through:
// shared, or a new one made from opts (owned: closed with it).
func ownClient(who string, shared *Client, opts []Opt) (c *Client, owned bool, err error) {
	switch {
	case shared != nil && len(opts) > 0:
		return nil, false, fmt.Errorf("client: %s given both WithClient and client options (NameServers, Logger, …): configure the shared Client instead", who)
	case shared != nil:
		return shared, false, nil
	}
	c, err = New(opts...)
	return c, err == nil, err
}

// MaxInFlight bounds the SendAsync calls whose result is pending; one more
// waits for a slot. Default DefaultMaxInFlight.
func MaxInFlight(n int) ProducerOpt { return producerOpt(func(c *producerCfg) { c.maxInFlight = n }) }

// ProducerGroup sets the producer group sent with each message. Default
// DefaultProducerGroup.
func ProducerGroup(g string) ProducerOpt { return producerOpt(func(c *producerCfg) { c.group = g }) }

// SendRetries sets how many times a failed send is retried on another
// queue (see retryableSend for which failures). Independently of it, a
// send over a reused connection that turns out dead is sent once more on a
// new connection (see the package doc). Default DefaultSendRetries.
func SendRetries(n int) ProducerOpt { return producerOpt(func(c *producerCfg) { c.retries = n }) }

// SendTimeout bounds each send attempt (the caller's context bounds them
// all). Default DefaultSendTimeout.
func SendTimeout(d time.Duration) ProducerOpt {
	return producerOpt(func(c *producerCfg) { c.sendTimeout = d })
}

// CreateTopicKey sets the template topic whose route is used for a topic
// the name servers do not know, so that a broker with auto-creation creates
// it on the first send (what rocketmq-client-go does). Empty disables the
// fallback: sends to unknown topics fail with ErrTopicNotFound. Default
// DefaultCreateTopicKey.
func CreateTopicKey(topic string) ProducerOpt {
	return producerOpt(func(c *producerCfg) { c.createTopicKey = topic })
}

// MaxMessageSize bounds a message body, or the encoded body of a batch;
// larger sends fail before reaching the network. Default
// DefaultMaxMessageSize.
func MaxMessageSize(n int) ProducerOpt {
	return producerOpt(func(c *producerCfg) { c.maxMessageSize = n })
}

func (c *producerCfg) validate() error {
	if c.group == "" {
		return errors.New("client: ProducerGroup is empty")
	}
	return checkBounds([]bound{
		// More than a few retries turns an outage into a retry storm.
		{"SendRetries", int64(c.retries), 0, 16, "retries of a failed send"},
		{"SendTimeout", int64(c.sendTimeout), int64(time.Millisecond), int64(10 * time.Minute), "a send timeout"},
		// A frame is at most 16 MiB (remoting.DefaultMaxFrameSize) with the header.
		{"MaxMessageSize", int64(c.maxMessageSize), 1, remoting.DefaultMaxFrameSize - 64<<10, "bytes of a body or batch"},
		{"MaxInFlight", int64(c.maxInFlight), 1, 1 << 16, "pending SendAsync calls"},
	})
}

// ConsumerOpt configures a Consumer (NewConsumer).
type ConsumerOpt interface{ applyConsumer(*consumerCfg) }

type consumerOpt func(*consumerCfg)

func (f consumerOpt) applyConsumer(c *consumerCfg) { f(c) }

// Defaults of the consumer options.
const (
	// DefaultPullBatchSize is how many messages a Receive or Run pull asks
	// a queue for (rocketmq-client-go: 32).
	DefaultPullBatchSize = 32
	// DefaultHandlerBatchSize is how many messages Run hands a Handler at
	// once (rocketmq-client-go's ConsumeMessageBatchMaxSize: 1).
	DefaultHandlerBatchSize = 1
	// DefaultMaxReconsumeTimes is how often Run has a failed message
	// redelivered before the broker moves it to the group's dead-letter
	// topic (RocketMQ: 16).
	DefaultMaxReconsumeTimes = 16
)

type consumerCfg struct {
	group        string
	subscription string
	subs         []topicSub // Subscribe, in order
	longPoll     time.Duration
	start        StartPosition
	pullBatch    int
	handlerBatch int
	maxReconsume int
	// client is the shared Client of WithClient; nil makes one from
	// clientOpts.
	client     *Client
	clientOpts []Opt
}

// topicSub is a topic and its tag expression.
type topicSub struct{ topic, expr string }

// ConsumerGroup sets the consumer group: the members of a group share its
// subscribed queues (Receive, Run) and its committed offsets. Required
// unless STRATA_CONSUMER_GROUP is set.
func ConsumerGroup(g string) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { c.group = g })
}

// Subscribe adds topic, filtered by the tag expression expr ("*", or tags
// joined by "||"), to what Receive and Run read; give it once per topic.
// Pull filters a subscribed topic's messages with its expression too.
func Subscribe(topic, expr string) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { c.subs = append(c.subs, topicSub{topic, expr}) })
}

// Subscription sets the tag expression Pull filters topics that were not
// given to Subscribe with: "*" for every message, or tags joined by "||"
// ("a||b"). Default DefaultSubscription.
func Subscription(expr string) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { c.subscription = expr })
}

// LongPoll lets the broker hold a pull that finds no new message for up to
// d, answering as soon as one arrives (Strata and Java brokers cap the hold
// near 20-25 s). Receive waits this long for a first message before it
// returns none. Default 0: a pull at the end of a queue answers
// PullNoNewMsg at once, and Receive returns at once with what the queues
// hold. Run always holds its pulls (20 s, or d when set).
func LongPoll(d time.Duration) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { c.longPoll = d })
}

// StartFrom sets where Receive and Run start in a queue for which the
// group has no committed offset (RocketMQ's ConsumeFromWhere). Default
// FromLastOffset.
func StartFrom(p StartPosition) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { c.start = p })
}

// PullBatchSize sets how many messages (1..1024) Receive and Run ask a
// queue for in one pull. Default DefaultPullBatchSize.
func PullBatchSize(n int) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { c.pullBatch = n })
}

// HandlerBatchSize sets the most messages (1..1024) of one queue Run
// hands its Handler at once. Default DefaultHandlerBatchSize.
func HandlerBatchSize(n int) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { c.handlerBatch = n })
}

// MaxReconsumeTimes sets how often (1..64) a message whose Handler failed
// is redelivered before the broker moves it to the dead-letter topic
// %DLQ%<group>. Default DefaultMaxReconsumeTimes.
func MaxReconsumeTimes(n int) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { c.maxReconsume = n })
}

// StartPosition is where a group starts in a queue it has no committed
// offset for (StartFrom).
type StartPosition struct {
	kind startKind
	t    time.Time
}

type startKind int

const (
	startLast startKind = iota
	startFirst
	startTime
)

var (
	// FromLastOffset starts at the queue's end: only messages stored from
	// now on (RocketMQ's CONSUME_FROM_LAST_OFFSET; a broker answers 0 for a
	// queue that still holds its very first message, so nothing is
	// skipped on a new topic).
	FromLastOffset = StartPosition{kind: startLast}
	// FromFirstOffset starts at the oldest message the queue holds, in
	// either tier (CONSUME_FROM_FIRST_OFFSET).
	FromFirstOffset = StartPosition{kind: startFirst}
)

// FromTime starts at the first message stored at or after t
// (CONSUME_FROM_TIMESTAMP).
func FromTime(t time.Time) StartPosition { return StartPosition{kind: startTime, t: t} }

// String returns the RocketMQ ConsumeFromWhere name.
func (p StartPosition) String() string {
	switch p.kind {
	case startFirst:
		return "CONSUME_FROM_FIRST_OFFSET"
	case startTime:
		return "CONSUME_FROM_TIMESTAMP"
	}
	return "CONSUME_FROM_LAST_OFFSET"
}

func (c *consumerCfg) validate() error {
	if err := checkName("consumer group (ConsumerGroup)", c.group, 255); err != nil {
		return err
	}
	if strings.TrimSpace(c.subscription) == "" {
		return errors.New(`client: Subscription is empty (use "*" for every message)`)
	}
	seen := make(map[string]bool, len(c.subs))
	for _, s := range c.subs {
		if err := checkTopic(s.topic); err != nil {
			return err
		}
		if seen[s.topic] {
			return fmt.Errorf("client: topic %q subscribed twice", s.topic)
		}
		seen[s.topic] = true
		if _, err := parseTags(s.expr); err != nil {
			return err
		}
	}
	if c.start.kind == startTime && c.start.t.IsZero() {
		return errors.New("client: FromTime of the zero time")
	}
	return checkBounds([]bound{
		// Brokers answer held pulls within ~25 s; longer only delays errors.
		{"LongPoll", int64(c.longPoll), 0, int64(30 * time.Second), "the longest hold a broker honours"},
		{"PullBatchSize", int64(c.pullBatch), 1, maxPullMessages, "messages of one pull"},
		{"HandlerBatchSize", int64(c.handlerBatch), 1, maxPullMessages, "messages of one Handler call"},
		{"MaxReconsumeTimes", int64(c.maxReconsume), 1, 64, "redeliveries of a failed message"},
	})
}
