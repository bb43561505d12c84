package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/strata-mq/strata/controller"
	"github.com/strata-mq/strata/internal/tlsconf"
)

// openController starts the failover controller a name server embeds, when
// --controller-listen is set.
func openController(c serverConfig, tlsl *tlsconf.Loader, log *slog.Logger) (*controller.Controller, error) {
	if c.ControllerListen == "" {
		return nil, nil
	}
	cc := controller.Config{
		Bind: c.ControllerListen, Peers: splitAddrs(c.ControllerPeers),
		Dir: filepath.Join(c.DataDir, "controller"), Logger: log,
	}
	if tlsl != nil {
		// Only controllers may join the raft group: mutual TLS.
		srv, err := tlsl.Peers()
		if err != nil {
			return nil, fmt.Errorf("failover controller over TLS: the raft peers authenticate each other with --tls-ca: %w", err)
		}
		cc.ServerTLS, cc.ClientTLS = srv, tlsl.Client()
	}
	ctl, err := controller.Open(cc)
	if err != nil {
		return nil, fmt.Errorf("failover controller: %w", err)
	}
	log.Info("failover controller", "raft", c.ControllerListen, "peers", c.ControllerPeers)
	return ctl, nil
}

// failoverHandler serves brokers' heartbeats (JSON) with a controller.
type failoverHandler struct{ c *controller.Controller }

func (h failoverHandler) HandleHeartbeat(ctx context.Context, body []byte) ([]byte, error) {
	var hb controller.Heartbeat
	if err := json.Unmarshal(body, &hb); err != nil {
		return nil, fmt.Errorf("bad controller heartbeat: %w", err)
	}
	if hb.Group == "" || hb.ID < 0 {
		return nil, fmt.Errorf("bad controller heartbeat: group %q, id %d", hb.Group, hb.ID)
	}
	a, err := h.c.Heartbeat(ctx, hb)
	if err != nil {
		return nil, err
	}
	return json.Marshal(a)
}
