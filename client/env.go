package client

import (
	"fmt"
	"time"

	"github.com/caarlos0/env/v11"
)

// EnvPrefix starts the names of the environment variables New and
// NewProducer read (see the package doc, "Configuration").
const EnvPrefix = "STRATA_"

// envCfg is the configuration the environment may set; nil (variable
// unset or empty) leaves the default.
type envCfg struct {
	NameServers    *string        `env:"NAMESRV"`
	ClientID       *string        `env:"CLIENT_ID"`
	DialTimeout    *time.Duration `env:"DIAL_TIMEOUT"`
	RequestTimeout *time.Duration `env:"REQUEST_TIMEOUT"`
	RouteTTL       *time.Duration `env:"ROUTE_TTL"`
	SendTimeout    *time.Duration `env:"SEND_TIMEOUT"`
	ProducerGroup  *string        `env:"PRODUCER_GROUP"`
	ConsumerGroup  *string        `env:"CONSUMER_GROUP"`
	AccessKey      *string        `env:"ACCESS_KEY"`
	SecretKey      *string        `env:"SECRET_KEY"`
	SecurityToken  *string        `env:"SECURITY_TOKEN"`
}

func readEnv() (envCfg, error) {
	var e envCfg
	if err := env.ParseWithOptions(&e, env.Options{Prefix: EnvPrefix}); err != nil {
		return envCfg{}, fmt.Errorf("client: environment: %w", err)
	}
	return e, nil
}

// applyClient sets the Client settings the environment gives.
func (e *envCfg) applyClient(c *cfg) {
	if e.NameServers != nil {
		c.nameServers = SplitAddrs(*e.NameServers)
	}
	if e.ClientID != nil {
		c.clientID = *e.ClientID
	}
	if e.DialTimeout != nil {
		c.dialTimeout = *e.DialTimeout
	}
	if e.RequestTimeout != nil {
		c.requestTimeout = *e.RequestTimeout
	}
	if e.RouteTTL != nil {
		c.routeTTL = *e.RouteTTL
	}
	if e.AccessKey != nil {
		c.creds.AccessKey = *e.AccessKey
	}
	if e.SecretKey != nil {
		c.creds.SecretKey = *e.SecretKey
	}
	if e.SecurityToken != nil {
		c.creds.SecurityToken = *e.SecurityToken
	}
}

// applyProducer sets the Producer settings the environment gives.
func (e *envCfg) applyProducer(c *producerCfg) {
	if e.SendTimeout != nil {
		c.sendTimeout = *e.SendTimeout
	}
	if e.ProducerGroup != nil {
		c.group = *e.ProducerGroup
	}
}

// applyConsumer sets the Consumer settings the environment gives.
func (e *envCfg) applyConsumer(c *consumerCfg) {
	if e.ConsumerGroup != nil {
		c.group = *e.ConsumerGroup
	}
}
