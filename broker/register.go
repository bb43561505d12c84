package broker

import (
	"context"
	"sync"
	"time"

	"github.com/strata-mq/strata/namesrv"
	"github.com/strata-mq/strata/remoting"
)

// nameServers keeps one connection per name server for registration.
type nameServers struct {
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
	c, err := remoting.Dial(ctx, addr, remoting.ConnOptions{})
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

// registration describes this broker and its topics for the name servers.
func (b *Broker) registration() namesrv.Registration {
	ts, counter := b.topics.DataVersion()
	r := namesrv.Registration{
		ClusterName: b.cfg.ClusterName, BrokerName: b.cfg.BrokerName, BrokerAddr: b.addr, BrokerID: b.cfg.BrokerID,
		Topics:      map[string]namesrv.TopicConfig{},
		DataVersion: namesrv.DataVersion{Timestamp: ts, Counter: counter},
	}
	for _, tc := range b.topics.List() {
		r.Topics[tc.Name] = namesrv.TopicConfig{ReadQueueNums: tc.ReadQueues, WriteQueueNums: tc.WriteQueues,
			Perm: tc.Perm, TopicSysFlag: tc.SysFlag, Order: tc.Order}
	}
	return r
}

// register sends REGISTER_BROKER to every name server, concurrently.
func (b *Broker) register() {
	if len(b.cfg.NameServers) == 0 {
		return
	}
	reg := b.registration()
	var wg sync.WaitGroup
	for _, addr := range b.cfg.NameServers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, err := namesrv.NewRegisterBrokerRequest(reg)
			if err == nil {
				var c *remoting.Conn
				if c, err = b.ns.conn(ctx, addr); err == nil {
					var resp *remoting.Command
					if resp, err = c.Invoke(ctx, req); err == nil {
						_, err = namesrv.DecodeRegisterBrokerResponse(resp)
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
				req := namesrv.NewUnregisterBrokerRequest(b.cfg.ClusterName, b.addr, b.cfg.BrokerName, b.cfg.BrokerID)
				_, err = c.Invoke(ctx, req)
			}
			if err != nil {
				b.log.Debug("unregister from name server", "namesrv", addr, "err", err)
			}
		}()
	}
	wg.Wait()
}
