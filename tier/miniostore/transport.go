package miniostore

import (
	"io"
	"net/http"
	"sync"
)

// detachTransport protects request bodies from minio-go's retries.
//
// When a server answers before it has read the whole request body (a 503,
// say), net/http may still be reading the body in its connection-writing
// goroutine after RoundTrip has returned, while minio-go already seeks the
// same body back to the start for its next attempt: a data race on the
// body. After a failed round trip this transport waits for any read in
// progress and cuts the old request off from the body, so the writer sees
// an error instead of touching the reader minio-go reuses.
type detachTransport struct {
	rt http.RoundTripper
}

func (t detachTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return t.rt.RoundTrip(req)
	}
	body := &detachableBody{rc: req.Body}
	r2 := new(http.Request)
	*r2 = *req
	r2.Body = body
	resp, err := t.rt.RoundTrip(r2)
	if err != nil || resp.StatusCode >= 300 {
		// minio-go may retry with the same body: detach it first. After
		// a success the server has read the whole body and minio-go
		// does not reuse it.
		body.detach()
	}
	return resp, err
}

// detachableBody forwards to rc until detached; afterwards reads fail and
// rc is never touched again.
type detachableBody struct {
	mu       sync.Mutex
	rc       io.ReadCloser
	detached bool
	closed   bool
}

func (b *detachableBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.detached || b.closed {
		return 0, io.ErrClosedPipe
	}
	return b.rc.Read(p)
}

func (b *detachableBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.detached {
		return nil // the owner may already have closed or reused it
	}
	return b.rc.Close()
}

func (b *detachableBody) detach() {
	b.mu.Lock()
	b.detached = true
	b.mu.Unlock()
}
