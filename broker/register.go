package broker

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/strata-mq/strata/namesrv"
	"github.com/strata-mq/strata/remoting"
)

// nameServers keeps one connection per name server for registration.
type nameServers struct {
	opts  remoting.ConnOptions // the broker's dialOptions
	mu    sync.Mutex
	conns map[string]*remoting.Conn
}

func (n *nameServers) conn(ctx context.Context, addr string) (*remoting.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.conns[addr]; c != nil {
		select {
		case <-c.Done():
		default:
			return c, nil
		}
	}
	c, err := remoting.Dial(ctx, addr, n.opts)
	if err != nil {
		return nil, err
	}
	if n.conns == nil {
		n.conns = map[string]*remoting.Conn{}
	}
	n.conns[addr] = c
	return c, nil
}

func (n *nameServers) closeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, c := range n.conns {
		c.Close()
		delete(n.conns, k)
	}
}

// registration describes this broker and its topics for the name servers,
// with the tier bounds of its queues (tierBounds) in Extra.
func (b *Broker) registration() namesrv.Registration {
	ts, counter := b.topics.DataVersion()
	r := namesrv.Registration{
		ClusterName: b.cfg.ClusterName, BrokerName: b.cfg.BrokerName, BrokerAddr: b.addr, BrokerID: b.routeID(),
		Topics:      map[string]namesrv.TopicConfig{},
		DataVersion: namesrv.DataVersion{Timestamp: ts, Counter: counter},
	}
	if b.leads() {
		r.HAServerAddr = b.repl.addr
	}
	for _, tc := range b.topics.List() {
		r.Topics[tc.Name] = namesrv.TopicConfig{ReadQueueNums: tc.ReadQueues, WriteQueueNums: tc.WriteQueues,
			Perm: tc.Perm, TopicSysFlag: tc.SysFlag, Order: tc.Order}
	}
	if tb := b.tierBounds(); len(tb) > 0 {
		extra, err := namesrv.RegistrationExtra{TierBounds: tb}.Encode()
		if err != nil {
			b.log.Warn("tier bounds not reported to the name servers", "err", err)
		} else {
			r.Extra = extra
		}
	}
	return r
}

// maxRegisterFrame bounds a REGISTER_BROKER frame: the frame limit of
// name servers (16 MiB, as Java's), less room for the header.
const maxRegisterFrame = remoting.DefaultMaxFrameSize - 64<<10

// registerRequest builds the REGISTER_BROKER request for reg. If the body
// would not fit a frame, the tier bounds are left out (clients then read
// cold offsets through the leader, which serves them too) rather than the
// registration failing.
func (b *Broker) registerRequest(reg namesrv.Registration) (*remoting.Command, error) {
	req, err := namesrv.NewRegisterBrokerRequest(reg)
	if err != nil || len(req.Body) <= maxRegisterFrame || reg.Extra == nil {
		return req, err
	}
	b.log.Warn("registration too large for a frame with tier bounds; registering without them",
		"body_bytes", len(req.Body), "tier_bounds_bytes", len(reg.Extra), "limit", maxRegisterFrame)
	reg.Extra = nil
	return namesrv.NewRegisterBrokerRequest(reg)
}

// register sends REGISTER_BROKER to every name server, concurrently. It
// does nothing once Shutdown has begun (Shutdown unregisters first).
func (b *Broker) register() {
	if len(b.cfg.NameServers) == 0 {
		return
	}
	b.mu.Lock()
	closing := b.closing
	b.mu.Unlock()
	if closing || b.routeID() < 0 {
		return // shutting down, or a replica that waits for its group's leader
	}
	req, err := b.registerRequest(b.registration())
	if err != nil {
		b.log.Error("cannot build the registration", "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, addr := range b.cfg.NameServers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := b.ns.conn(ctx, addr)
			if err == nil {
				// Invoke sets the request's opaque: one copy per name
				// server (the body, built once, is only read).
				r := *req
				r.ExtFields = maps.Clone(req.ExtFields)
				var resp *remoting.Command
				if resp, err = c.Invoke(ctx, &r); err == nil {
					var res namesrv.RegisterResult
					if res, err = namesrv.DecodeRegisterBrokerResponse(resp); err == nil && res.Warning != "" {
						b.log.Warn("name server accepted the registration in part", "namesrv", addr, "warning", res.Warning)
					}
					if err == nil {
						b.learnLeader(res.HAServerAddr)
					}
				}
			}
			if err != nil {
				b.log.Warn("register with name server failed; will retry", "namesrv", addr, "err", err)
			}
		}()
	}
	wg.Wait()
}

// unregister tells every name server this broker is going away, so routes
// stop listing it before its port closes.
func (b *Broker) unregister(ctx context.Context) {
	defer b.ns.closeAll()
	var wg sync.WaitGroup
	for _, addr := range b.cfg.NameServers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			c, err := b.ns.conn(ctx, addr)
			if err == nil {
				req := namesrv.NewUnregisterBrokerRequest(b.cfg.ClusterName, b.addr, b.cfg.BrokerName, b.routeID())
				_, err = c.Invoke(ctx, req)
			}
			if err != nil {
				b.log.Debug("unregister from name server", "namesrv", addr, "err", err)
			}
		}()
	}
	wg.Wait()
}
