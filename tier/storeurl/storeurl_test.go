package storeurl

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-mq/strata/tier/fsstore"
	"github.com/strata-mq/strata/tier/miniostore"
	"github.com/strata-mq/strata/tier/s3store"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		url  string
		want Spec
	}{
		{"file:///var/lib/strata/tier", Spec{Scheme: "file", Dir: "/var/lib/strata/tier"}},
		{"file://localhost/var/tier", Spec{Scheme: "file", Dir: "/var/tier"}},
		{"file://./strata-data/tier", Spec{Scheme: "file", Dir: "./strata-data/tier"}},
		{"file:rel/dir", Spec{Scheme: "file", Dir: "rel/dir"}},
		{"FILE:///x", Spec{Scheme: "file", Dir: "/x"}},
		{"file:///with%20space", Spec{Scheme: "file", Dir: "/with space"}},
		{"s3://bucket", Spec{Scheme: "s3", S3: s3store.Config{Bucket: "bucket"}}},
		{"s3://bucket/", Spec{Scheme: "s3", S3: s3store.Config{Bucket: "bucket"}}},
		{"s3://bucket/a/b/", Spec{Scheme: "s3", S3: s3store.Config{Bucket: "bucket"}, Prefix: "a/b"}},
		{"s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=eu-west-1", Spec{Scheme: "s3",
			S3: s3store.Config{Bucket: "bucket", Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1"}, Prefix: "prefix"}},
		{"s3://b/p?path_style=true", Spec{Scheme: "s3", S3: s3store.Config{Bucket: "b", UsePathStyle: true}, Prefix: "p"}},
		{"minio://127.0.0.1:9000/bucket", Spec{Scheme: "minio", MinIO: miniostore.Config{Endpoint: "127.0.0.1:9000", Bucket: "bucket"}}},
		{"minio://minio.local:443/bucket/cold/tier/?secure=true&region=r1", Spec{Scheme: "minio",
			MinIO: miniostore.Config{Endpoint: "minio.local:443", Bucket: "bucket", Secure: true, Region: "r1"}, Prefix: "cold/tier"}},
		{"minio://[::1]:9000/b/p", Spec{Scheme: "minio", MinIO: miniostore.Config{Endpoint: "[::1]:9000", Bucket: "b"}, Prefix: "p"}},
	} {
		got, err := Parse(c.url)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.url, err)
			continue
		}
		if got != c.want {
			t.Errorf("Parse(%q) = %+v\nwant %+v", c.url, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"", "empty store URL"},
		{"   ", "empty store URL"},
		{"/just/a/path", "no scheme"},
		{"gs://bucket", `unknown scheme "gs"`},
		{"http://host/x", `unknown scheme "http"`},
		{"file://", "no directory"},
		{"file:///x?foo=1", `unexpected query parameter "foo"`},
		{"s3://", "no bucket"},
		{"s3:bucket", "no bucket"},
		{"s3://b/p?endpoint=127.0.0.1:9000", "must be an http:// or https:// URL"},
		{"s3://b/p?endpoint=ftp://x", "must be an http:// or https:// URL"},
		{"s3://b/p?regoin=x", `unknown query parameter "regoin"`},
		{"s3://b/p?region=a&region=b", "given 2 times"},
		{"s3://b/p?path_style=maybe", "not a boolean"},
		{"s3://b/a//b", "bad key prefix"},
		{"s3://b/a/../b", "bad key prefix"},
		{"s3://key:secret@bucket/p", "credentials do not belong"},
		{"minio://host/bucket", "no port"},
		{"minio://host:9000", "no bucket"},
		{"minio://host:9000/", "no bucket"},
		{"minio://host:9000/b?secure=yes please", "not a boolean"},
		{"minio://host:9000/b?tls=1", `unknown query parameter "tls"`},
		{"minio://u:p@host:9000/b", "credentials do not belong"},
		{"s3://b/p#frag", "unexpected fragment"},
		{"s3://b/%zz", "not a URL"},
	} {
		_, err := Parse(c.url)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", c.url)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v; want %q in the message", c.url, err, c.want)
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), ":p@") {
			t.Errorf("Parse(%q) leaks credentials: %v", c.url, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"s3://b/p":                    "s3://b/p",
		"s3://key:secret@b/p":         "s3://key:xxxxx@b/p",
		"s3://key:secret@b/%zz":       "s3://xxxxx@b/%zz",
		"minio://host:9000/b?secure=": "minio://host:9000/b?secure=",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOpen(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "tier")
	st, prefix, err := Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*fsstore.Store); !ok || prefix != "" {
		t.Fatalf("Open(file) = %T, %q", st, prefix)
	}
	if err := st.Put(ctx, "k", strings.NewReader("v"), 1); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	st, prefix, err = Open(ctx, "s3://bucket/cold/?endpoint=http://127.0.0.1:9000")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*s3store.Store); !ok || prefix != "cold" {
		t.Fatalf("Open(s3) = %T, %q", st, prefix)
	}
	st, prefix, err = Open(ctx, "minio://127.0.0.1:9000/bucket/a/b")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*miniostore.Store); !ok || prefix != "a/b" {
		t.Fatalf("Open(minio) = %T, %q", st, prefix)
	}
	if _, _, err := Open(ctx, "minio://127.0.0.1:9000/b/a"); err == nil || !strings.Contains(err.Error(), "bucket") {
		t.Fatalf("Open with an invalid bucket name = %v", err)
	}
	if _, _, err := Open(ctx, "bogus://x"); err == nil {
		t.Fatal("Open(bogus) succeeded")
	}
}

// FuzzParse checks that Parse never panics and that what it accepts is
// consistent.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"file:///x", "file://./rel", "file:rel", "s3://b/p?endpoint=http://h:1&region=r&path_style=1",
		"minio://h:1/b/p?secure=true", "s3://u:p@b", "minio://[::1]:9/b", "%", "s3://b/%zz", "::", "minio://h:/b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		spec, err := Parse(raw)
		if err != nil {
			return
		}
		if strings.HasPrefix(spec.Prefix, "/") || strings.HasSuffix(spec.Prefix, "/") {
			t.Fatalf("Parse(%q): prefix %q has outer slashes", raw, spec.Prefix)
		}
		switch spec.Scheme {
		case "file":
			if spec.Dir == "" {
				t.Fatalf("Parse(%q): empty dir", raw)
			}
		case "s3":
			if spec.S3.Bucket == "" {
				t.Fatalf("Parse(%q): empty bucket", raw)
			}
		case "minio":
			if spec.MinIO.Bucket == "" || spec.MinIO.Endpoint == "" {
				t.Fatalf("Parse(%q): empty bucket or endpoint", raw)
			}
		default:
			t.Fatalf("Parse(%q): scheme %q", raw, spec.Scheme)
		}
	})
}
