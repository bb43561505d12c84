package miniostore

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// earlyRT answers at once and keeps reading the request body in the
// background, as net/http does when a server replies before reading it.
type earlyRT struct {
	status int
	done   chan error
}

func (e earlyRT) RoundTrip(req *http.Request) (*http.Response, error) {
	go func() {
		buf := make([]byte, 7)
		for {
			if _, err := req.Body.Read(buf); err != nil {
				req.Body.Close()
				e.done <- err
				return
			}
		}
	}()
	return &http.Response{StatusCode: e.status, Body: http.NoBody}, nil
}

func TestDetachTransportFailure(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 1<<20)
	r := bytes.NewReader(data)
	done := make(chan error, 1)
	req, err := http.NewRequest(http.MethodPut, "http://example.invalid/b/k", io.NopCloser(r))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := detachTransport{rt: earlyRT{status: 503, done: done}}.RoundTrip(req)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("RoundTrip = %v, %v", resp, err)
	}
	// What minio-go does next: rewind and reuse the body. With the race
	// detector on, this must not race with the background reader.
	for range 100 {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != io.ErrClosedPipe {
		t.Fatalf("background reader ended with %v, want io.ErrClosedPipe", err)
	}
}

func TestDetachTransportSuccess(t *testing.T) {
	done := make(chan error, 1)
	req, err := http.NewRequest(http.MethodPut, "http://example.invalid/b/k", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := detachTransport{rt: earlyRT{status: 200, done: done}}.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("RoundTrip = %v, %v", resp, err)
	}
	if err := <-done; err != io.EOF {
		t.Fatalf("after a success the body reads to EOF, got %v", err)
	}
	// Requests without a body pass straight through.
	req, _ = http.NewRequest(http.MethodGet, "http://example.invalid/b/k", nil)
	if _, err := (detachTransport{rt: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r != req {
			t.Error("request without body was copied")
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})}).RoundTrip(req); err != nil {
		t.Fatal(err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
