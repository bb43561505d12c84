package client

import (
	"log/slog"
	"strconv"
	"strings"

	"github.com/strata-mq/strata/remoting"
)

// Header fields of a signed request (PROTOCOL.md §7).
const (
	aclAccessKey     = remoting.FieldAccessKey
	aclSecurityToken = remoting.FieldSecurityToken
	aclSignature     = remoting.FieldSignature
)

// redacted stands for a secret in String, GoString and LogValue.
const redacted = "<redacted>"

// Credentials are the RocketMQ ACL credentials a client signs its requests
// with, as rocketmq-client-go's primitive.Credentials. When AccessKey or
// SecretKey is empty nothing is signed. SecretKey never leaves the process:
// requests carry the AccessKey, the optional SecurityToken and an
// HMAC-SHA1 Signature keyed with it. String, GoString and LogValue redact
// SecretKey and SecurityToken, so a logged option does not leak them.
type Credentials struct {
	// AccessKey names the account; it is sent in clear in every request.
	AccessKey string
	// SecretKey keys the signature. It is never sent or printed.
	SecretKey string
	// SecurityToken, when set, is sent with every request (a temporary
	// credential's token). As in rocketmq-client-go it is not part of the
	// signed content; Java's broker signs it, so a token is only accepted by
	// brokers that skip it as Strata's does (PROTOCOL.md §7).
	SecurityToken string
}

// empty reports whether c cannot sign: AccessKey or SecretKey is empty.
func (c Credentials) empty() bool { return c.AccessKey == "" || c.SecretKey == "" }

// sign adds AccessKey, SecurityToken (when set) and Signature to
// req.ExtFields, allocating the map when it is nil; it does nothing when c
// is empty. The signature is what rocketmq-client-go's ACLInterceptor
// computes: base64(HMAC-SHA1(SecretKey, content)), where content is the
// values of the header fields plus AccessKey, in byte order of their keys,
// followed by the body; SecurityToken is not signed.
//
// sign is idempotent: fields a previous sign added (Signature, AccessKey,
// SecurityToken) are left out of the content and replaced, so signing a
// retried request again gives the same fields. (rocketmq-client-go builds a
// fresh request for each attempt and signs every field it finds.)
func (c Credentials) sign(req *remoting.Command) {
	if c.empty() {
		return
	}
	if req.ExtFields == nil {
		req.ExtFields = make(map[string]string, 3)
	}
	req.ExtFields[aclSignature] = remoting.Signature(c.AccessKey, c.SecretKey, req.ExtFields, req.Body)
	req.ExtFields[aclAccessKey] = c.AccessKey
	if c.SecurityToken != "" {
		req.ExtFields[aclSecurityToken] = c.SecurityToken
	}
}

// String describes c without its secrets, for example
// Credentials{AccessKey: "ak", SecretKey: <redacted>}. An empty secret
// shows as "" so that a missing one can be diagnosed.
func (c Credentials) String() string {
	var b strings.Builder
	b.WriteString("Credentials{AccessKey: ")
	b.WriteString(strconv.Quote(c.AccessKey))
	b.WriteString(", SecretKey: ")
	b.WriteString(hide(c.SecretKey))
	if c.SecurityToken != "" {
		b.WriteString(", SecurityToken: ")
		b.WriteString(redacted)
	}
	b.WriteByte('}')
	return b.String()
}

// GoString is String, so that %#v does not print the secrets either.
func (c Credentials) GoString() string { return "client." + c.String() }

// LogValue implements slog.LogValuer: a group with AccessKey and the secrets
// redacted.
func (c Credentials) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("AccessKey", c.AccessKey),
		slog.String("SecretKey", hide(c.SecretKey)),
	}
	if c.SecurityToken != "" {
		attrs = append(attrs, slog.String("SecurityToken", redacted))
	}
	return slog.GroupValue(attrs...)
}

// hide returns redacted for a set secret and "" (quoted) for an empty one.
func hide(secret string) string {
	if secret == "" {
		return `""`
	}
	return redacted
}
