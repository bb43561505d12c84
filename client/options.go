package client

import (
	"context"
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

// Opt configures a Client (New). Every Opt is also a ProducerOpt: given to
// NewProducer it configures the Client the Producer makes for itself.
type Opt interface {
	ProducerOpt
	apply(*cfg)
}

type clientOpt func(*cfg)

func (f clientOpt) apply(c *cfg) { f(c) }

func (f clientOpt) applyProducer(c *producerCfg) { c.clientOpts = append(c.clientOpts, f) }

// cfg is the Client's configuration, written by New only.
type cfg struct {
	nameServers     []string
	clientID        string
	dialTimeout     time.Duration
	requestTimeout  time.Duration
	routeTTL        time.Duration
	idleConnTimeout time.Duration
	log             *slog.Logger
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

// WithClient makes the Producer send through c, shared with other
// producers and consumers, instead of a Client of its own; Producer.Close
// then leaves c open. It cannot be combined with client options
// (NameServers, Logger, …): those configure c.
func WithClient(c *Client) ProducerOpt {
	return producerOpt(func(pc *producerCfg) { pc.client = c })
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

type consumerCfg struct {
	subscription string
	longPoll     time.Duration
}

// Subscription sets the tag expression pulls filter with: "*" for every
// message, or tags joined by "||" ("a||b"). Default DefaultSubscription.
func Subscription(expr string) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { c.subscription = expr })
}

// LongPoll lets the broker hold a pull that finds no new message for up to
// d, answering as soon as one arrives (Strata and Java brokers cap the hold
// near 20-25 s). Default 0: a pull at the end of a queue answers
// PullNoNewMsg at once.
func LongPoll(d time.Duration) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { c.longPoll = d })
}

func (c *consumerCfg) validate() error {
	if strings.TrimSpace(c.subscription) == "" {
		return errors.New(`client: Subscription is empty (use "*" for every message)`)
	}
	return checkBounds([]bound{
		// Brokers answer held pulls within ~25 s; longer only delays errors.
		{"LongPoll", int64(c.longPoll), 0, int64(30 * time.Second), "the longest hold a broker honours"},
	})
}
