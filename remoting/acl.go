package remoting

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"hash"
	"slices"
	"sync"
)

// Header fields of a signed request (PROTOCOL.md §7).
const (
	FieldAccessKey     = "AccessKey"
	FieldSecurityToken = "SecurityToken"
	FieldSignature     = "Signature"
)

// maxPooledContent bounds the content buffer a signer keeps between uses, so
// that one request with huge headers does not pin memory in the pool.
const maxPooledContent = 64 << 10

// signer holds the scratch space of one signature, reused through signers:
// the sorted keys, the concatenated values, the digest, and the HMAC of the
// last secret used (hmac.New costs several allocations; a client signs
// every request with the same secret).
type signer struct {
	secret string
	mac    hash.Hash
	keys   []string
	buf    []byte
	sum    []byte
}

var signers = sync.Pool{New: func() any { return new(signer) }}

// Signature returns the ACL signature of a request (PROTOCOL.md §7), as
// rocketmq-client-go's ACLInterceptor computes it and a broker checks it:
// base64(HMAC-SHA1(secretKey, content)), where content is the values of
// ext's fields without Signature and SecurityToken, with AccessKey set to
// accessKey, in byte order of their keys, followed by body.
func Signature(accessKey, secretKey string, ext map[string]string, body []byte) string {
	s := signers.Get().(*signer)
	defer s.release()
	return s.signature(accessKey, secretKey, ext, body)
}

// VerifySignature reports, in time independent of where they differ,
// whether sig is the signature of the request's fields and body under
// accessKey and secretKey.
func VerifySignature(accessKey, secretKey string, ext map[string]string, body []byte, sig string) bool {
	want := Signature(accessKey, secretKey, ext, body)
	return hmac.Equal([]byte(want), []byte(sig))
}

func (s *signer) signature(accessKey, secretKey string, ext map[string]string, body []byte) string {
	if s.mac == nil || s.secret != secretKey {
		s.mac = hmac.New(sha1.New, []byte(secretKey))
		s.secret = secretKey
	} else {
		s.mac.Reset()
	}

	keys := append(s.keys[:0], FieldAccessKey)
	for k := range ext {
		switch k {
		case FieldAccessKey, FieldSecurityToken, FieldSignature:
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys) // byte order, as strings.Compare in the reference

	buf := s.buf[:0]
	for _, k := range keys {
		if k == FieldAccessKey {
			buf = append(buf, accessKey...)
		} else {
			buf = append(buf, ext[k]...)
		}
	}
	s.mac.Write(buf)
	s.mac.Write(body)
	s.sum = s.mac.Sum(s.sum[:0])

	clear(keys) // drop references to the request's strings
	s.keys = keys[:0]
	s.buf = buf[:0]
	n := base64.StdEncoding.EncodedLen(len(s.sum))
	if cap(buf) < n {
		s.buf = make([]byte, 0, n)
	}
	return string(base64.StdEncoding.AppendEncode(s.buf, s.sum))
}

// release returns s to signers, dropping an oversized content buffer.
func (s *signer) release() {
	if cap(s.buf) > maxPooledContent {
		s.buf = nil
	}
	signers.Put(s)
}
