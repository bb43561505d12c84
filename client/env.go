package client

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
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
	TLS            *string        `env:"TLS"`
	TLSCA          *string        `env:"TLS_CA"`
}

// tlsConfig is the TLS configuration STRATA_TLS and STRATA_TLS_CA ask for,
// nil for none.
func (e *envCfg) tlsConfig() (*tls.Config, error) {
	mode := ""
	if e.TLS != nil {
		mode = *e.TLS
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	switch mode {
	case "", "off":
		if e.TLSCA == nil || *e.TLSCA == "" {
			return nil, nil
		}
	case "on":
	case "insecure":
		c.InsecureSkipVerify = true
		return c, nil
	default:
		return nil, fmt.Errorf("client: %sTLS %q: on, insecure or off", EnvPrefix, mode)
	}
	if e.TLSCA != nil && *e.TLSCA != "" {
		pem, err := os.ReadFile(*e.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("client: %sTLS_CA: %w", EnvPrefix, err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client: %sTLS_CA: %s holds no PEM certificate", EnvPrefix, *e.TLSCA)
		}
	}
	return c, nil
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
