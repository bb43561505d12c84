// Package storeurl opens a tier.ObjectStore from a URL (the --tier flag):
//
//	file:///var/lib/strata/tier          a local directory (also file://./rel, file:rel)
//	s3://bucket/prefix                   Amazon S3; region from AWS_REGION / shared config, else us-east-1
//	s3://bucket/prefix?endpoint=http://host:9000&region=us-east-1
//	                                     any S3-compatible endpoint, path-style addressing
//	minio://host:9000/bucket/prefix      MinIO over HTTP; ?secure=true for HTTPS, &region=…
//
// Credentials never go in the URL: s3 uses the AWS default chain
// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, shared files, instance roles),
// minio the MINIO_ROOT_USER/MINIO_ROOT_PASSWORD, MINIO_ACCESS_KEY/
// MINIO_SECRET_KEY or AWS_* environment variables.
//
// The key prefix in the URL is returned separately, for the caller to put in
// front of its keys; the store itself is opened without a prefix.
package storeurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/fsstore"
	"github.com/strata-mq/strata/tier/miniostore"
	"github.com/strata-mq/strata/tier/s3store"
)

// Spec is a parsed store URL.
type Spec struct {
	// Scheme is "file", "s3" or "minio".
	Scheme string
	// Dir is the directory of a file store.
	Dir string
	// S3 configures an s3 store (Prefix left empty).
	S3 s3store.Config
	// MinIO configures a minio store (Prefix left empty).
	MinIO miniostore.Config
	// Prefix is the key prefix: no leading or trailing slash, may be "".
	Prefix string
}

// Open parses rawURL and opens the store it names. It returns the store and
// the key prefix from the URL. Opening makes no request to a remote store.
func Open(ctx context.Context, rawURL string) (tier.ObjectStore, string, error) {
	spec, err := Parse(rawURL)
	if err != nil {
		return nil, "", err
	}
	var st tier.ObjectStore
	switch spec.Scheme {
	case "file":
		st, err = fsstore.New(spec.Dir)
	case "s3":
		st, err = s3store.New(ctx, spec.S3)
	case "minio":
		st, err = miniostore.New(ctx, spec.MinIO)
	}
	if err != nil {
		return nil, "", fmt.Errorf("storeurl: open %s: %w", Redact(rawURL), err)
	}
	return st, spec.Prefix, nil
}

// Parse parses a store URL without opening the store.
func Parse(rawURL string) (Spec, error) {
	fail := func(format string, args ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("storeurl: %q: %s", Redact(rawURL), fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(rawURL) == "" {
		return Spec{}, errors.New("storeurl: empty store URL (want file:///path, s3://bucket/prefix or minio://host:port/bucket/prefix)")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fail("not a URL: %v", err)
	}
	if u.User != nil {
		return fail("credentials do not belong in the URL; use the AWS_* or MINIO_* environment variables")
	}
	if u.Fragment != "" {
		return fail("unexpected fragment #%s", u.Fragment)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fail("bad query: %v", err)
	}
	spec := Spec{Scheme: strings.ToLower(u.Scheme)}
	switch spec.Scheme {
	case "file":
		if err := onlyParams(q); err != nil {
			return fail("%v", err)
		}
		dir := u.Path
		switch {
		case u.Opaque != "": // file:rel/dir
			dir, err = url.PathUnescape(u.Opaque)
			if err != nil {
				return fail("bad path: %v", err)
			}
		case u.Host != "" && u.Host != "localhost": // file://./rel or file://rel/dir
			dir = u.Host + u.Path
		}
		if dir == "" {
			return fail("no directory (want file:///absolute/path or file://./relative/path)")
		}
		spec.Dir = dir
		return spec, nil

	case "s3":
		if err := onlyParams(q, "endpoint", "region", "path_style"); err != nil {
			return fail("%v", err)
		}
		if u.Opaque != "" || u.Host == "" {
			return fail("no bucket (want s3://bucket/prefix)")
		}
		spec.S3 = s3store.Config{Bucket: u.Host, Endpoint: q.Get("endpoint"), Region: q.Get("region")}
		if v := q.Get("path_style"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fail("path_style=%q is not a boolean", v)
			}
			spec.S3.UsePathStyle = b
		}
		if e := spec.S3.Endpoint; e != "" {
			eu, err := url.Parse(e)
			if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
				return fail("endpoint %q must be an http:// or https:// URL", e)
			}
		}
		if spec.Prefix, err = cleanPrefix(u.Path); err != nil {
			return fail("%v", err)
		}
		return spec, nil

	case "minio":
		if err := onlyParams(q, "secure", "region"); err != nil {
			return fail("%v", err)
		}
		if u.Opaque != "" || u.Host == "" {
			return fail("no server (want minio://host:port/bucket/prefix)")
		}
		if u.Port() == "" {
			return fail("no port in %q (want minio://host:port/bucket/prefix)", u.Host)
		}
		bucket, rest, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if bucket == "" {
			return fail("no bucket (want minio://host:port/bucket/prefix)")
		}
		spec.MinIO = miniostore.Config{Endpoint: u.Host, Bucket: bucket, Region: q.Get("region")}
		if v := q.Get("secure"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fail("secure=%q is not a boolean", v)
			}
			spec.MinIO.Secure = b
		}
		if spec.Prefix, err = cleanPrefix(rest); err != nil {
			return fail("%v", err)
		}
		return spec, nil

	case "":
		return fail("no scheme (want file://, s3:// or minio://)")
	default:
		return fail("unknown scheme %q (want file, s3 or minio)", u.Scheme)
	}
}

// onlyParams rejects query parameters other than allowed, and repeated ones.
func onlyParams(q url.Values, allowed ...string) error {
	for k, v := range q {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return fmt.Errorf("unexpected query parameter %q (none are supported)", k)
			}
			return fmt.Errorf("unknown query parameter %q (supported: %s)", k, strings.Join(allowed, ", "))
		}
		if len(v) > 1 {
			return fmt.Errorf("query parameter %q given %d times", k, len(v))
		}
	}
	return nil
}

// cleanPrefix strips leading and trailing slashes and rejects empty, "."
// and ".." segments.
func cleanPrefix(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", nil
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("bad key prefix %q (empty, \".\" or \"..\" segment)", p)
		}
	}
	return p, nil
}

// Redact returns rawURL with any user information masked, for messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err == nil {
		if u.User == nil {
			return rawURL
		}
		return u.Redacted()
	}
	// Unparseable: mask whatever sits between "://" and an "@".
	if i := strings.Index(rawURL, "://"); i >= 0 {
		rest := rawURL[i+3:]
		if j := strings.IndexByte(rest, '@'); j >= 0 {
			return rawURL[:i+3] + "xxxxx" + rest[j:]
		}
	}
	return rawURL
}
