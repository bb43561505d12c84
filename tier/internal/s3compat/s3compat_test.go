package s3compat

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestExactReader(t *testing.T) {
	e := &ExactReader{R: strings.NewReader("abcdef"), Left: 4}
	b, err := io.ReadAll(e)
	if err != nil || string(b) != "abcd" {
		t.Fatalf("long reader: %q %v", b, err)
	}
	e = &ExactReader{R: strings.NewReader("ab"), Left: 4}
	if _, err := io.ReadAll(e); !errors.Is(err, io.ErrUnexpectedEOF) || e.Err == nil {
		t.Fatalf("short reader: %v", err)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		code        string
		status      int
		anyNotFound bool
		want        Kind
	}{
		{"NoSuchBucket", 404, true, NoBucket},
		{"NoSuchKey", 404, false, NotFound},
		{"", 404, false, NotFound},
		{"NoSuchUpload", 404, false, Other},
		{"NoSuchUpload", 404, true, NotFound},
		{"PreconditionFailed", 412, false, Exists},
		{"", http.StatusPreconditionFailed, false, Exists},
		{"SignatureDoesNotMatch", 403, false, Credentials},
		{"AccessDenied", 403, false, Denied},
		{"", 403, false, Denied},
		{"SlowDown", 503, false, Retry},
		{"", 500, false, Retry},
		{"", 429, false, Retry},
		{"InvalidArgument", 400, false, Other},
	} {
		if got := Classify(c.code, c.status, c.anyNotFound); got != c.want {
			t.Errorf("Classify(%q, %d, %v) = %v, want %v", c.code, c.status, c.anyNotFound, got, c.want)
		}
	}
}

func TestCheckEmptyRange(t *testing.T) {
	if CheckEmptyRange(3, 0, 10) != nil || CheckEmptyRange(10, -1, 10) != nil {
		t.Fatal("a valid empty range refused")
	}
	if CheckEmptyRange(11, 0, 10) == nil || CheckEmptyRange(3, -1, 10) == nil {
		t.Fatal("a non-empty or past-the-end range accepted")
	}
}
