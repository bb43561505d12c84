package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// testConfig returns a config with small files for dir.
func testConfig(dir string) Config {
	return Config{
		Dir:              dir,
		SegmentSize:      256 << 10,
		MaxMessageSize:   32 << 10,
		WriteBufferSize:  256 << 10,
		QueueFileEntries: 1000,
		IndexSlots:       1024,
		IndexEntries:     4096,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func openTest(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// testMsg builds a message whose body and properties identify it.
func testMsg(topic string, qid int32, n int, bodySize int) remoting.MessageExt {
	body := bytes.Repeat([]byte{byte('a' + n%26)}, bodySize)
	copy(body, fmt.Sprintf("%s/%d/%d|", topic, qid, n))
	var props []byte
	props = remoting.AppendProperty(props, remoting.PropTags, fmt.Sprintf("tag%d", n%3))
	props = remoting.AppendProperty(props, remoting.PropKeys, fmt.Sprintf("key-%d k%d", n, n%10))
	props = remoting.AppendProperty(props, remoting.PropUniqKey, fmt.Sprintf("U%08d", n))
	return remoting.MessageExt{Topic: topic, QueueID: qid, Body: body, Properties: props, BornTimestamp: 1700000000000}
}

// checkGoroutines fails if goroutines started since base do not stop.
func checkGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines still running, want <= %d:\n%s", n, base, buf)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// readAll reads every record of topic/qid from offset 0.
func readAll(t testing.TB, s *Store, topic string, qid int32) []remoting.MessageExt {
	t.Helper()
	var out []remoting.MessageExt
	off := s.MinOffset(topic, qid)
	for {
		r, err := s.Get(topic, qid, off, 32, 1<<20, nil)
		if err != nil {
			t.Fatalf("Get %s/%d@%d: %v", topic, qid, off, err)
		}
		if r.Status != Found {
			return out
		}
		for _, rec := range r.Records {
			m, err := remoting.DecodeMessageExt(rec)
			if err != nil {
				t.Fatalf("decode %s/%d@%d: %v", topic, qid, off, err)
			}
			out = append(out, m)
		}
		off = r.NextOffset
	}
}

func isTmpfs(path string) bool {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == path && f[2] == "tmpfs" {
			return true
		}
	}
	return false
}
