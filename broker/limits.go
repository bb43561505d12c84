package broker

import (
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// Limits bound what one client, or many, can make the broker hold: a
// hostile or broken client gets refusals or its connection closed, and the
// others are still served.
type Limits struct {
	// MaxConns caps client connections (default 10000) and MaxConnsPerIP
	// those from one address (default 1000); a connection past either is
	// closed at once.
	MaxConns, MaxConnsPerIP int
	// MaxInflight caps the requests one connection has being served; past
	// it a request is answered SYSTEM_BUSY at once. Held pulls do not
	// count (MaxHeldPulls bounds them). Default 1024.
	MaxInflight int
	// MaxHeldPulls caps the pulls held for new messages, over all clients;
	// past it a pull that finds nothing is answered after a pause of a
	// second (counted in flight on its connection), so that clients that
	// pull again at once do not spin. Default 100000.
	MaxHeldPulls int
	// MaxReplyBacklog bounds the reply bytes waiting for a client that
	// does not read them; past it the connection is closed. Default 16 MiB
	// (so at most MaxConnsPerIP × 16 MiB for one address).
	MaxReplyBacklog int
	// WriteTimeout closes a connection whose client does not take a reply
	// within it. Default 60s.
	WriteTimeout time.Duration
}

func (l *Limits) setDefaults() {
	if l.MaxConns <= 0 {
		l.MaxConns = 10000
	}
	if l.MaxConnsPerIP <= 0 {
		l.MaxConnsPerIP = 1000
	}
	if l.MaxInflight <= 0 {
		l.MaxInflight = 1024
	}
	if l.MaxHeldPulls <= 0 {
		l.MaxHeldPulls = 100000
	}
	if l.MaxReplyBacklog <= 0 {
		l.MaxReplyBacklog = 16 << 20
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = 60 * time.Second
	}
}

// inflightKey keys a connection's count of requests being served.
type inflightKey struct{}

// admit counts a request on c, refusing it past Limits.MaxInflight.
// Every admitted request is released once served.
func (b *Broker) admit(c *remoting.Conn) bool {
	n, _ := c.Value(inflightKey{}).(*atomic.Int64)
	if n == nil {
		n = new(atomic.Int64)
		c.SetValue(inflightKey{}, n) // only the reader goroutine calls admit
	}
	if n.Add(1) > int64(b.cfg.Limits.MaxInflight) {
		n.Add(-1)
		return false
	}
	return true
}

func (b *Broker) release(c *remoting.Conn) {
	if n, _ := c.Value(inflightKey{}).(*atomic.Int64); n != nil {
		n.Add(-1)
	}
}
