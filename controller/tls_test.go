package controller

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/tlsconf"
	"github.com/strata-mq/strata/internal/tlstest"
)

// TestRaftOverMutualTLS: three controllers form their raft group over
// mutual TLS, and a peer without a certificate of the CA is not let in.
func TestRaftOverMutualTLS(t *testing.T) {
	log, _ := testLogger(t)
	ca := tlstest.NewCA(t)
	cert, key := ca.Issue(t, "controller")
	l, err := tlsconf.Load(tlsconf.Files{CertFile: cert, KeyFile: key, CAFile: ca.File}, log)
	if err != nil {
		t.Fatal(err)
	}
	peers, err := l.Peers()
	if err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 3)
	var cs []*Controller
	for i, a := range addrs {
		cs = append(cs, open(t, Config{Bind: a, Peers: addrs, Dir: filepath.Join(t.TempDir(), fmt.Sprint(i)), Logger: log,
			ServerTLS: peers, ClientTLS: l.Client()}))
	}
	waitFor(t, 15*time.Second, "a raft leader over TLS that replicates a group", func() bool {
		for _, c := range cs {
			if _, err := c.serving(); err == nil {
				_, err := c.Heartbeat(context.Background(), hb(0, 1, 1))
				return err == nil
			}
		}
		return false
	})
	waitFor(t, 10*time.Second, "every FSM to have the group", func() bool {
		for _, c := range cs {
			if _, ok := groupStatus(t, c, "g"); !ok {
				return false
			}
		}
		return true
	})

	// A client without a certificate: the handshake fails.
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{InsecureSkipVerify: true}}
	c, err := d.Dial("tcp", addrs[0])
	if err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Fatal("the raft port took a peer without a certificate")
	}
}
