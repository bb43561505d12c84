package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/strata-mq/strata/acl"
	"github.com/strata-mq/strata/broker"
)

// openACL loads --acl-file, or enforces --require-auth and warns about
// listeners that others can reach without authentication.
func openACL(c serverConfig, log *slog.Logger, listens ...string) (*acl.ACL, error) {
	if c.ACLFile == "" {
		if c.RequireAuth {
			return nil, errors.New("--require-auth: no --acl-file; refusing to start without authentication")
		}
		exposed := false
		for _, l := range listens {
			if !loopbackListen(l) {
				exposed = true
				log.Warn("authentication is off and this address is reachable from other machines: anyone who can connect may "+
					"send, consume and query (topic and configuration changes are refused from non-loopback peers); "+
					"set --acl-file (and --require-auth to insist)", "listen", l)
			}
		}
		if !exposed {
			log.Warn("authentication is off (loopback only: processes on this machine may send, consume and administer); set --acl-file to require it")
		}
		return nil, nil
	}
	a, err := acl.Open(c.ACLFile, log)
	if err != nil {
		return nil, fmt.Errorf("--acl-file: %w", err)
	}
	log.Info("authentication on", "acl_file", c.ACLFile)
	return a, nil
}

// loopbackListen reports whether a listen address is reachable only from
// this machine.
func loopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// brokerCredentials are what a broker signs its own requests with:
// STRATA_ACCESS_KEY and STRATA_SECRET_KEY, else the first admin account of
// its ACL file (the name servers and leaders it talks to share the file).
func brokerCredentials(c serverConfig, a *acl.ACL, log *slog.Logger) broker.Credentials {
	if c.AccessKey != "" && c.SecretKey != "" {
		return broker.Credentials{AccessKey: c.AccessKey, SecretKey: c.SecretKey}
	}
	if a != nil {
		if ak, sk, ok := a.AdminCredentials(); ok {
			log.Info("the broker signs its own requests as the ACL file's admin account", "access_key", ak)
			return broker.Credentials{AccessKey: ak, SecretKey: sk}
		}
		log.Warn("authentication is on but the broker has no credentials for its own requests (no admin account in the ACL file, " +
			"no STRATA_ACCESS_KEY/STRATA_SECRET_KEY): name servers and leaders that check ACLs will refuse them")
	}
	return broker.Credentials{}
}
