// Package acl authenticates requests signed as RocketMQ clients sign them
// (an access key and an HMAC-SHA1 signature over the request's fields and
// body, PROTOCOL.md §7) and says what each account may do: publish or
// subscribe per topic and group, by exact name or prefix, administer, and
// from which source addresses. The accounts live in a YAML file (RocketMQ's
// plain_acl.yml account fields) that is reloaded when it changes. Denied
// requests and administrative changes go to an audit log.
package acl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// ErrDenied is the one error a refused request gets: it never says whether
// the key, the signature or the permission was wrong (the audit log does).
var ErrDenied = errors.New("access denied")

// ACL is the accounts of one file, reloaded when the file changes.
type ACL struct {
	path  string
	audit *slog.Logger
	cur   atomic.Pointer[Table]
	// Owned by Run.
	last []byte
}

// DefaultReload is how often Run looks at the file.
const DefaultReload = 2 * time.Second

// Open loads the ACL file at path. audit receives denied requests and
// administrative changes (component=audit); nil: slog.Default().
func Open(path string, audit *slog.Logger) (*ACL, error) {
	if audit == nil {
		audit = slog.Default()
	}
	a := &ACL{path: path, audit: audit.With("component", "audit")}
	data, err := a.read()
	if err != nil {
		return nil, err
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	a.cur.Store(t)
	a.last = data
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		audit.Warn("the ACL file holds secret keys and others may read it; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	return a, nil
}

// NewStatic returns an ACL of t that never reloads (tests, embedding).
func NewStatic(t *Table, audit *slog.Logger) *ACL {
	if audit == nil {
		audit = slog.Default()
	}
	a := &ACL{audit: audit.With("component", "audit")}
	a.cur.Store(t)
	return a
}

func (a *ACL) read() ([]byte, error) {
	f, err := os.Open(a.path)
	if err != nil {
		return nil, fmt.Errorf("acl: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxFileBytes+1)); err != nil {
		return nil, fmt.Errorf("acl: read %s: %w", a.path, err)
	}
	return buf.Bytes(), nil
}

// Run reloads the file every interval (DefaultReload when ≤ 0) while its
// content changes, until ctx ends. A file that no longer parses keeps the
// accounts in force and is reported, once per change.
func (a *ACL) Run(ctx context.Context, interval time.Duration) {
	if a.path == "" {
		return
	}
	if interval <= 0 {
		interval = DefaultReload
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var bad []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		data, err := a.read()
		if err != nil {
			if bad == nil || len(bad) != 0 {
				a.audit.Error("ACL file unreadable; the accounts loaded before stay in force", "path", a.path, "err", err)
				bad = []byte{}
			}
			continue
		}
		if bytes.Equal(data, a.last) || bytes.Equal(data, bad) {
			continue
		}
		tb, err := Parse(data)
		if err != nil {
			a.audit.Error("ACL file changed but is invalid; the accounts loaded before stay in force", "path", a.path, "err", err)
			bad = data
			continue
		}
		a.cur.Store(tb)
		a.last, bad = data, nil
		a.audit.Info("ACL file reloaded", "path", a.path, "accounts", tb.Len())
	}
}

// AdminCredentials returns the access and secret key of the admin account
// first in access-key order, if there is one: a broker that checks ACLs
// signs its own requests (to name servers and leaders sharing the file) as
// it unless told otherwise.
func (a *ACL) AdminCredentials() (accessKey, secretKey string, ok bool) {
	for _, acct := range a.cur.Load().accounts {
		if acct.admin && (!ok || acct.accessKey < accessKey) {
			accessKey, secretKey, ok = acct.accessKey, acct.secretKey, true
		}
	}
	return accessKey, secretKey, ok
}

// Authenticate checks a request's access key and signature, and that the
// account may send from remote. Every failure is ErrDenied; the reason
// goes to the audit log.
func (a *ACL) Authenticate(req *remoting.Command, remote netip.Addr) (*Account, error) {
	ak := req.ExtFields[remoting.FieldAccessKey]
	acct, why := a.verify(ak, req.ExtFields[remoting.FieldSignature], req.ExtFields, req.Body)
	if why == "" && !acct.allowsSource(remote) {
		why = "source address not allowed for this account"
	}
	if why != "" {
		a.Denied(req, remote, ak, why)
		return nil, ErrDenied
	}
	return acct, nil
}

// AuthenticateAdmin checks a signature over fields made with an admin
// account's secret (a follower's hello on the replication port). Every
// failure is ErrDenied, audited with what.
func (a *ACL) AuthenticateAdmin(accessKey, signature string, fields map[string]string, what string) error {
	acct, why := a.verify(accessKey, signature, fields, nil)
	if why == "" && !acct.Admin() {
		why = "needs an admin account"
	}
	if why != "" {
		a.audit.Warn("request denied", "access_key", accessKey, "request", what, "reason", why)
		return ErrDenied
	}
	return nil
}

// verify checks a signature; it returns the account, or why it failed.
func (a *ACL) verify(ak, sig string, fields map[string]string, body []byte) (*Account, string) {
	acct := a.cur.Load().accounts[ak]
	switch {
	case ak == "" || sig == "":
		return nil, "unsigned request"
	case acct == nil:
		// Spend the same work as a known key, so timing does not tell
		// which keys exist.
		remoting.VerifySignature(ak, "unknown-key-secret", fields, body, sig)
		return nil, "unknown access key"
	case !remoting.VerifySignature(ak, acct.secretKey, fields, body, sig):
		return nil, "bad signature"
	}
	return acct, ""
}

// Denied records a refused request in the audit log.
func (a *ACL) Denied(req *remoting.Command, remote netip.Addr, accessKey, why string) {
	a.audit.Warn("request denied", "remote", remote.String(), "access_key", accessKey,
		"code", req.Code, "request", remoting.RequestCodeName(req.Code), "reason", why)
}

// AdminChange records an administrative request that was carried out.
func (a *ACL) AdminChange(req *remoting.Command, remote netip.Addr, acct *Account, detail ...any) {
	args := append([]any{"remote", remote.String(), "access_key", acct.AccessKey(),
		"code", req.Code, "request", remoting.RequestCodeName(req.Code)}, detail...)
	a.audit.Info("admin change", args...)
}
