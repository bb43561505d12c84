package tlsconf

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/tlstest"
)

// serve accepts TLS connections on a loopback port with cfg, completing
// each handshake, until the test ends.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if tc, ok := c.(*tls.Conn); ok && tc.Handshake() == nil {
					io.Copy(io.Discard, c)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// serial dials addr with cfg and returns the serial number of the server's
// certificate.
func serial(t *testing.T, addr string, cfg *tls.Config) (int64, error) {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

var quiet = slog.New(slog.DiscardHandler)

func TestServerAndClient(t *testing.T) {
	ca := tlstest.NewCA(t)
	cert, key := ca.Issue(t, "server")
	l, err := Load(Files{CertFile: cert, KeyFile: key, CAFile: ca.File}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, l.Server())
	first, err := serial(t, addr, l.Client())
	if err != nil {
		t.Fatalf("a client trusting the CA: %v", err)
	}
	// Another CA's client does not trust the server.
	other := tlstest.NewCA(t)
	ocert, okey := other.Issue(t, "other")
	ol, err := Load(Files{CertFile: ocert, KeyFile: okey, CAFile: other.File}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serial(t, addr, ol.Client()); err == nil {
		t.Fatal("a client trusting another CA accepted the server")
	}

	// New files: handshakes after the next check use them, no restart.
	ca.Issue(t, "server")
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := serial(t, addr, l.Client())
		if err == nil && n != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server still presents certificate %d (%v)", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClientAuth(t *testing.T) {
	ca := tlstest.NewCA(t)
	cert, key := ca.Issue(t, "server")
	l, err := Load(Files{CertFile: cert, KeyFile: key, CAFile: ca.File, ClientAuth: true}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, l.Server())
	if _, err := serial(t, addr, l.Client()); err != nil {
		t.Fatalf("a client with a certificate of the CA: %v", err)
	}
	// Without a certificate the handshake fails (TLS 1.3 reports it at the
	// first read).
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}
	c, err := d.Dial("tcp", addr)
	if err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	if _, err := Load(Files{CertFile: cert, KeyFile: key, ClientAuth: true}, quiet); err == nil {
		t.Error("client auth without a CA file loaded")
	}
	if _, err := Load(Files{CertFile: cert, KeyFile: cert}, quiet); err == nil {
		t.Error("a certificate as its own key loaded")
	}
}
