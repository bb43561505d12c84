package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/fsstore"
)

func newTierBroker(t *testing.T, dir string, os tier.ObjectStore) *Broker {
	t.Helper()
	b, err := New(context.Background(), Config{
		DataDir: dir, Listen: "127.0.0.1:0", AutoCreateTopics: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Store: store.Config{SegmentSize: 256 << 10, Flush: store.FlushAsync, CheckpointInterval: 50 * time.Millisecond,
			QueueFlushDelay: 50 * time.Millisecond},
		Tier: TierConfig{Store: os, CacheSize: 4 << 20, ManifestWait: 5 * time.Second,
			Tier: tier.Config{BlockSize: 32 << 10, ReadTimeout: 2 * time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	return b
}

// TestColdTierOffsets: once a queue's first messages live only in the cold
// tier, a new group's QUERY_CONSUMER_OFFSET is QUERY_NOT_FOUND (so its
// client applies ConsumeFromWhere, as Java answers for a queue whose first
// message is no longer in memory) instead of 0, which would make every new
// CONSUME_FROM_LAST_OFFSET group replay the whole cold history; min/max
// offsets and pulls span both tiers.
func TestColdTierOffsets(t *testing.T) {
	os, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := newTierBroker(t, t.TempDir(), os)
	c := pipeTo(t, b, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40010})
	const n = 400
	body := make([]byte, 1000)
	for i := range n {
		copy(body, fmt.Sprintf("m-%04d", i))
		resp := invoke(t, c, remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
			"a": "pg", "b": "CT", "c": "TBW102", "d": "1", "e": "0", "f": "0", "g": "1700000000000", "h": "0",
			"i": "", "j": "0", "k": "false", "l": "0"}, body))
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("send %d: %d %q", i, resp.Code, resp.Remark)
		}
	}
	if err := b.Store().Seal(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Store().MinOffset("CT", 0) == 0 || b.Store().MaxOffset("CT", 0) != n {
		if time.Now().After(deadline) {
			t.Fatalf("offset 0 not offloaded and deleted: hot [%d,%d), segments %+v, tier %+v", b.Store().MinOffset("CT", 0),
				b.Store().MaxOffset("CT", 0), b.Store().Segments(), b.tier.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	query := func(code int16) *remoting.Command {
		return invoke(t, c, remoting.NewRequest(code, map[string]string{"consumerGroup": "new-group", "topic": "CT", "queueId": "0"}, nil))
	}
	if resp := query(remoting.ReqGetMinOffset); resp.Ext("offset") != "0" {
		t.Errorf("min offset %q, want 0 (cold tier)", resp.Ext("offset"))
	}
	if resp := query(remoting.ReqGetMaxOffset); resp.Ext("offset") != strconv.Itoa(n) {
		t.Errorf("max offset %q, want %d", resp.Ext("offset"), n)
	}
	if resp := query(remoting.ReqQueryConsumerOffset); resp.Code != remoting.RespQueryNotFound {
		t.Errorf("query offset of a new group: %d offset %q; want QUERY_NOT_FOUND", resp.Code, resp.Ext("offset"))
	}
	// Pulls from 0 cross from the cold tier into the hot one, densely.
	next := int64(0)
	for next < n {
		resp := invoke(t, c, remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
			"consumerGroup": "g", "topic": "CT", "queueId": "0", "queueOffset": strconv.FormatInt(next, 10),
			"maxMsgNums": "32", "sysFlag": "0", "commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*"}, nil))
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("pull at %d: %d %q %v", next, resp.Code, resp.Remark, resp.ExtFields)
		}
		for rest := resp.Body; len(rest) > 0; rest = rest[binary.BigEndian.Uint32(rest):] {
			m, err := remoting.DecodeMessageExt(rest)
			if err != nil {
				t.Fatal(err)
			}
			if m.QueueOffset != next || string(m.Body[:6]) != fmt.Sprintf("m-%04d", next) {
				t.Fatalf("pulled offset %d body %q, want %d", m.QueueOffset, m.Body[:6], next)
			}
			next++
		}
		if nb := resp.Ext("nextBeginOffset"); nb != strconv.FormatInt(next, 10) {
			t.Fatalf("nextBeginOffset %s after offset %d", nb, next)
		}
	}
}

// TestNewFailureReleasesCache: a broker whose cold tier cannot be set up
// leaves no goroutines behind (the block cache's workers).
func TestNewFailureReleasesCache(t *testing.T) {
	ts, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// A file where the staging directory goes: the tier cannot start.
	if err := os.WriteFile(filepath.Join(dir, "tier-staging"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	_, err = New(context.Background(), Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Tier: TierConfig{Store: ts}})
	if err == nil {
		t.Fatal("New succeeded with an unusable staging directory")
	}
	waitUntil(t, "goroutines of the failed broker to stop", func() bool { return runtime.NumGoroutine() <= before })
}
