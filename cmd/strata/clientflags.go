package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/strata-mq/strata/client"
)

// ToolConfig is what every client tool (produce, consume, admin) takes.
// The tools' configs embed it; it is exported because caarlos0/env skips
// embedded fields of unexported types (they cannot be set by reflection).
type ToolConfig struct {
	Namesrv  string        `env:"NAMESRV"`
	Timeout  time.Duration `env:"TIMEOUT"`
	LogLevel string        `env:"LOG_LEVEL"`
}

func defaultClientConfig() ToolConfig {
	return ToolConfig{Namesrv: client.DefaultNameServer, Timeout: client.DefaultRequestTimeout, LogLevel: "warn"}
}

func (c *ToolConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Namesrv, "namesrv", c.Namesrv, "name servers, host:port;host:port")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "timeout of each request to a name server or broker")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (logs go to stderr)")
}

// newClient builds the Client of a tool; its logs go to stderr.
func (c *ToolConfig) newClient(stderr io.Writer) (*client.Client, error) {
	log, err := newLogger(stderr, c.LogLevel)
	if err != nil {
		return nil, err
	}
	return client.New(client.NameServers(c.Namesrv), client.RequestTimeout(c.Timeout), client.Logger(log))
}

// parseToolFlags is parseConfig for the tools: a flag the command does
// not know, or a stray argument, is a usage error (exit status 2).
func parseToolFlags(cfg any, fs *flag.FlagSet, args []string, define func(*flag.FlagSet)) error {
	err := parseConfig(cfg, fs, args, define)
	if err == nil || errors.Is(err, flag.ErrHelp) || !fs.Parsed() {
		return err // nil, -h, or an environment error
	}
	return fmt.Errorf("%w: %s: %v", errUsage, fs.Name(), err)
}

// usageError reports a misuse of a tool: the message and the command's
// flags on stderr, and an error main turns into exit status 2.
func usageError(stderr io.Writer, fs *flag.FlagSet, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(stderr, "%s: %s\n", fs.Name(), msg)
	fs.Usage()
	return fmt.Errorf("%w: %s: %s", errUsage, fs.Name(), msg)
}

// hintError replaces an error's text with advice while keeping it for
// errors.Is.
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

// explain turns the client's errors into messages a user can act on.
func explain(err error, c *ToolConfig, topic string) error {
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*tls.CertificateVerificationError)):
		return &hintError{fmt.Sprintf("the server's TLS certificate was not accepted (set STRATA_TLS_CA to the CA that signs it): %v", err), err}
	case errors.Is(err, client.ErrTopicNotFound):
		return &hintError{fmt.Sprintf("topic %q does not exist (create it with: strata admin topic create --topic %s)", topic, topic), err}
	case errors.Is(err, client.ErrNameServerUnreachable):
		return &hintError{fmt.Sprintf("cannot reach the name server at %s (is 'strata standalone' running? set --namesrv or STRATA_NAMESRV): %v", c.Namesrv, err), err}
	case errors.Is(err, client.ErrBrokerUnreachable):
		return &hintError{fmt.Sprintf("cannot reach the broker: %v", err), err}
	}
	return err
}
