// Package tlsconf builds the TLS configurations of Strata's ports (client,
// name server, replication) and of a process's own connections from
// certificate files, and picks up new files without a restart: a
// handshake after the files changed (looked at once a second at most) uses
// them.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Files names the PEM files of a TLS configuration.
type Files struct {
	// CertFile and KeyFile are this process's certificate chain and key,
	// presented to clients (and, with mutual TLS, to servers).
	CertFile, KeyFile string
	// CAFile, if set, holds the certificates that sign the peers': a
	// server verifies client certificates against it (ClientAuth) and a
	// process's own connections verify servers against it (default: the
	// system's roots).
	CAFile string
	// ClientAuth makes the ports require a client certificate signed by
	// CAFile (mutual TLS).
	ClientAuth bool
}

// checkEvery bounds how often a handshake looks at the files.
const checkEvery = time.Second

// Loader holds the current certificate and CA pool, reloading them when
// the files change. A change that does not load (a half-written file, a
// key that does not match) keeps the previous ones and is logged.
type Loader struct {
	files Files
	log   *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	pool    *x509.CertPool // nil without CAFile
	stamp   string         // sizes and modification times of the files loaded
	checked time.Time
}

// Load reads the files; they must load now.
func Load(f Files, log *slog.Logger) (*Loader, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("tlsconf: a certificate and a key file are needed")
	}
	if f.ClientAuth && f.CAFile == "" {
		return nil, errors.New("tlsconf: client certificates are verified against a CA file: set it")
	}
	if log == nil {
		log = slog.Default()
	}
	l := &Loader{files: f, log: log.With("component", "tls")}
	stamp, err := l.stampFiles()
	if err != nil {
		return nil, err
	}
	if err := l.load(stamp); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Loader) stampFiles() (string, error) {
	s := ""
	for _, p := range []string{l.files.CertFile, l.files.KeyFile, l.files.CAFile} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("tlsconf: %w", err)
		}
		s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

// load reads the files as of stamp; l.mu is held or l is not shared yet.
func (l *Loader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(l.files.CertFile, l.files.KeyFile)
	if err != nil {
		return fmt.Errorf("tlsconf: %w", err)
	}
	var pool *x509.CertPool
	if l.files.CAFile != "" {
		pem, err := os.ReadFile(l.files.CAFile)
		if err != nil {
			return fmt.Errorf("tlsconf: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tlsconf: %s holds no PEM certificate", l.files.CAFile)
		}
	}
	l.cert, l.pool, l.stamp = &cert, pool, stamp
	return nil
}

// current returns the certificate and pool, reloading them first if the
// files changed since they were loaded.
func (l *Loader) current() (*tls.Certificate, *x509.CertPool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.checked) >= checkEvery {
		l.checked = now
		stamp, err := l.stampFiles()
		if err == nil && stamp != l.stamp {
			if err = l.load(stamp); err == nil {
				l.log.Info("TLS certificate files reloaded", "cert", l.files.CertFile)
			}
		}
		if err != nil {
			l.log.Error("TLS certificate files changed but cannot be loaded; the previous ones stay in use", "err", err)
			l.stamp = stamp // report once per change
		}
	}
	return l.cert, l.pool
}

// Server returns the configuration of a listening port.
func (l *Loader) Server() *tls.Config { return l.server(l.files.ClientAuth) }

// Peers returns the configuration of a port only peers may use (the
// controllers' raft port): clients must present a certificate signed by
// CAFile, whatever ClientAuth says. It fails without a CAFile.
func (l *Loader) Peers() (*tls.Config, error) {
	if l.files.CAFile == "" {
		return nil, errors.New("tlsconf: peers are verified against a CA file: set it")
	}
	return l.server(true), nil
}

func (l *Loader) server(clientAuth bool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := l.current()
			c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}}
			if clientAuth {
				c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, pool
			}
			return c, nil
		},
	}
}

// Client returns the configuration of the process's own connections to
// other Strata processes: servers are verified against CAFile (or the
// system's roots) by the dialled host name or IP address, which their
// certificates must name, and this process's certificate is presented
// when asked for (mutual TLS), reloaded as it changes. The CA file is read
// when Client is called: a new CA for outbound connections needs a
// restart.
func (l *Loader) Client() *tls.Config {
	_, pool := l.current()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := l.current()
			return cert, nil
		},
	}
}
