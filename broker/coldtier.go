package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/cache"
	"github.com/strata-mq/strata/remoting"
	"github.com/strata-mq/strata/tier"
)

// TierConfig configures the broker's cold tier.
type TierConfig struct {
	// Store holds segment objects and the manifest.
	Store tier.ObjectStore
	// Prefix is the key prefix inside Store; objects go under
	// <Prefix>/<cluster>/<broker>/.
	Prefix string
	// HotRetention decides how long offloaded segments stay on local disk.
	HotRetention HotRetention
	// CacheSize bounds the decompressed cold blocks kept in memory.
	// Default 512 MiB.
	CacheSize int64
	// ManifestWait is how long a broker starting with an empty data
	// directory waits for the cold tier's manifest (it must know where the
	// offloaded history ends before it writes anything). Default 60s.
	ManifestWait time.Duration
	// Tier tunes the cold tier itself (upload concurrency, block size,
	// read timeout); Store, Root, StagingDir, Cache and the callbacks are set
	// by the broker.
	Tier tier.Config
}

// HotRetention is how long offloaded segments stay on local disk: while the
// log is under Bytes (or Percent of the data disk), or younger than Age.
// Zero deletes a segment as soon as it is offloaded.
type HotRetention struct {
	Bytes   int64
	Percent float64
	Age     time.Duration
}

// startManifestTimeout bounds the manifest load of a broker starting on a
// data directory that already holds a log.
const startManifestTimeout = 10 * time.Second

// setupTier prepares the cold tier before the store opens: it loads the
// manifest (insisting on it when the data directory is empty, since the log
// must continue after the offloaded history) and wires the store's seal,
// retention and queue-start hooks to it.
func (b *Broker) setupTier(ctx context.Context, sc *store.Config) error {
	tc := b.cfg.Tier
	if tc.CacheSize <= 0 {
		tc.CacheSize = 512 << 20
	}
	if tc.ManifestWait <= 0 {
		tc.ManifestWait = 60 * time.Second
	}
	b.cache = cache.New(cache.Config{MaxBytes: tc.CacheSize, Logger: b.cfg.Logger})
	cfg := tc.Tier
	cfg.Store = tc.Store
	cfg.Root = strings.Trim(strings.Join([]string{strings.Trim(tc.Prefix, "/"), b.cfg.ClusterName, b.cfg.BrokerName}, "/"), "/")
	cfg.StagingDir = filepath.Join(b.cfg.DataDir, "tier-staging")
	cfg.Cache = b.cache
	cfg.Logger = b.cfg.Logger
	cfg.Metrics = b.cfg.Metrics
	if !b.reader() {
		cfg.LocalSegment = b.localSegment
		cfg.OnOffloaded = func(tier.SegmentEntry) { b.kickRetention() }
		// Only the group's leader offloads: a follower keeps the manifest
		// in view (its retention and cold reads need it) and, under
		// failover, offloads once promoted (Tier.Lead), as the writer of
		// its epoch; then only what its followers hold, so the manifest
		// never lists bytes a later leader lacks.
		cfg.Standby = b.cfg.Failover || b.cfg.Role == RoleFollower
		if b.cfg.Failover {
			cfg.OffloadLimit = func() int64 { return b.repl.leader.Settled() }
		}
	}
	// A rebuild from the cold tier is finished only once every queue the
	// manifest knows has its start on local disk (startTier); until then a
	// restart must insist on the manifest as on an empty disk.
	rebuildMark := filepath.Join(b.cfg.DataDir, rebuildMarker)
	_, markErr := os.Stat(rebuildMark)
	fresh := !store.HasLog(sc.Dir) || markErr == nil || b.reader()
	// Bound the manifest loads made before the broker starts: an
	// unreachable store (no answer at all) would otherwise hold the start
	// for as long as the store client's timeouts and retries last (minutes).
	// On a disk that holds a log the broker starts without the manifest
	// (offload retries in the background); on an empty one the whole wait is
	// ManifestWait.
	loadWait := tc.ManifestWait
	if !fresh {
		loadWait = min(loadWait, startManifestTimeout)
	}
	lctx, cancel := context.WithTimeout(ctx, loadWait)
	defer cancel()
	t, err := tier.New(lctx, cfg)
	if t == nil {
		return err
	}
	b.tier = t
	if b.cfg.Metrics != nil {
		if err := b.cache.RegisterMetrics(b.cfg.Metrics); err != nil {
			return err
		}
	}
	if err != nil && fresh {
		// An empty disk: only the manifest says where the log continues.
		for attempt := 1; err != nil; attempt++ {
			if ctx.Err() != nil {
				t.Close()
				return ctx.Err()
			}
			if lctx.Err() != nil {
				t.Close()
				return fmt.Errorf("broker: the data directory is empty and the cold tier's manifest cannot be read, "+
					"so the broker cannot know where its history ends (fix the tier and start again): %w", err)
			}
			b.log.Warn("waiting for the cold tier manifest before starting on an empty data directory", "err", err)
			select {
			case <-lctx.Done():
			case <-time.After(min(time.Duration(attempt)*time.Second, 5*time.Second)):
			}
			_, err = t.Manifest()
			if err != nil && lctx.Err() == nil {
				// A load cut short by the deadline keeps the previous
				// error, which says what is wrong.
				if rerr := t.Reload(lctx); rerr == nil || lctx.Err() == nil {
					err = rerr
				}
			}
		}
	} else if err != nil {
		b.log.Error("cold tier unavailable at start; offload stays pending and retries", "err", err)
	}
	if b.reader() {
		// No log of its own: its (empty) queues start where the cold tier
		// ends, and nothing is offloaded or deleted.
		if m, err := t.Manifest(); err == nil {
			sc.StartOffset = m.EndOffset()
		}
		sc.QueueStart = func(topic string, id int32) int64 {
			_, next, _ := t.Bounds(topic, id)
			return next
		}
		return nil
	}
	if m, err := t.Manifest(); err == nil && fresh && m.Len() > 0 {
		if err := writeMarker(rebuildMark); err != nil {
			t.Close()
			return fmt.Errorf("broker: mark the rebuild from the cold tier: %w", err)
		}
		b.rebuilding = rebuildMark
		sc.StartOffset = m.EndOffset()
		b.log.Info("rebuilding from the cold tier: the log continues after the offloaded history",
			"segments", m.Len(), "log_offset", m.EndOffset(), "queues", len(m.Queues()))
	}
	sc.QueueStart = func(topic string, id int32) int64 {
		_, next, ok := t.Bounds(topic, id)
		if !ok {
			return 0
		}
		return next
	}
	sc.OnSeal = func(info store.SegmentInfo) {
		t.Offload(tier.SegmentFile{Base: info.Base, Size: info.Size, Path: info.Path})
	}
	hr := tc.HotRetention
	if hr.Percent > 0 {
		var st unix.Statfs_t
		if err := unix.Statfs(b.cfg.DataDir, &st); err != nil {
			// Without a byte bound (and no age) nothing would ever be
			// deleted: keep offloaded segments only as long as needed.
			b.log.Error("hot retention: cannot size the data disk; offloaded segments are deleted at once", "percent", hr.Percent, "err", err)
			hr = HotRetention{Age: hr.Age}
		} else {
			hr.Bytes = int64(float64(st.Blocks) * float64(st.Bsize) * hr.Percent / 100)
		}
	}
	b.hotRetention = hr
	sc.RetentionBytes, sc.RetentionAge = hr.Bytes, hr.Age
	sc.CanDelete = func(info store.SegmentInfo) bool { return t.Offloaded(info.Base) }
	return nil
}

// startTier runs once the store is open: queue the sealed segments not yet
// offloaded, recreate topics known only to the cold tier (after a rebuild),
// and start the offloader and the retention loop.
func (b *Broker) startTier() {
	if b.tier == nil {
		return
	}
	if b.reader() {
		b.wg.Add(1)
		go b.readerLoop()
		return
	}
	for _, sg := range b.store.Segments() {
		if sg.Sealed {
			b.tier.Offload(tier.SegmentFile{Base: sg.Base, Size: sg.Size, Path: sg.Path})
		}
	}
	if m, err := b.tier.Manifest(); err == nil {
		queues := map[string]int{}
		ensured := true
		for _, q := range m.Queues() {
			queues[q.Topic] = max(queues[q.Topic], int(q.QueueID)+1)
			// Record on local disk where each queue continues, so a later
			// start with the tier unreachable still numbers it right.
			if err := b.store.EnsureQueue(q.Topic, q.QueueID); err != nil {
				ensured = false
				b.log.Error("create queue known to the cold tier", "topic", q.Topic, "queue", q.QueueID, "err", err)
			}
		}
		if b.rebuilding != "" && ensured {
			if err := os.Remove(b.rebuilding); err != nil {
				b.log.Warn("remove the rebuild marker", "err", err)
			}
		}
		for name, n := range queues {
			if _, ok := b.topics.Get(name); ok {
				continue
			}
			tc := TopicConfig{Name: name, ReadQueues: n, WriteQueues: n, Perm: int(remoting.PermReadWrite)}
			if err := b.topics.CreateOrUpdate(tc); err != nil {
				b.log.Warn("recreate topic from the cold tier", "topic", name, "err", err)
			}
		}
	}
	b.tier.Start()
	b.wg.Add(1)
	go b.retentionLoop()
}

// retentionLoop deletes offloaded segments that hot retention no longer
// keeps. With retention 0 that is every offloaded segment, as soon as the
// store's checkpoint covers it; otherwise the store's own retention (by
// bytes or age, gated by Offloaded) does the work and this loop only nudges.
func (b *Broker) retentionLoop() {
	defer b.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var bounds tierBoundsWatch // early registration when tier bounds change (tierbounds.go)
	var refreshed time.Time
	for {
		select {
		case <-b.quit:
			return
		case <-tick.C:
		case <-b.retKick:
		}
		bounds.check(b, time.Now())
		if _, leading := b.tier.Leading(); !leading && time.Since(refreshed) >= b.cfg.ReaderRefresh {
			// A follower: what the leader offloaded may go from here too.
			refreshed = time.Now()
			b.refreshManifest(context.Background())
		}
		if b.hotRetention != (HotRetention{}) {
			continue
		}
		n, err := b.store.DeleteSegments(func(info store.SegmentInfo) bool { return b.tier.Offloaded(info.Base) })
		if err != nil {
			b.log.Warn("delete offloaded segments", "err", err)
		} else if n > 0 {
			b.log.Debug("deleted offloaded segments from the hot tier", "count", n)
		}
	}
}

// behindLeader is a follower's answer to a leader that no longer holds
// what the follower's log lacks: if the cold tier holds every byte of the
// local log, and more, the broker restarts with the log rebuilt from the
// cold tier (it continues where the manifest ends; what precedes is read
// from the cold tier) and reports true. Otherwise the follower keeps
// asking (false): nothing is deleted that exists nowhere else.
func (b *Broker) behindLeader() bool {
	end, ok := b.coldTierAhead()
	if ok {
		b.requestRestart(Restart{Reason: fmt.Sprintf("the leader no longer holds the log after %d; the cold tier does", b.store.LogEnd()), Rebuild: true})
		return true
	}
	if end >= 0 {
		b.log.Error("the leader no longer holds what this follower lacks, and neither does the cold tier",
			"log_end", b.store.LogEnd(), "cold_tier_end", end)
	}
	return false
}

// coldTierAhead reloads the manifest and reports whether it ends past the
// local log and holds all of the local log, so that the log can be rebuilt
// from it. end is the manifest's end, -1 when it could not be loaded.
func (b *Broker) coldTierAhead() (end int64, ahead bool) {
	if b.tier == nil {
		return -1, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !b.refreshManifest(ctx) {
		return -1, false
	}
	m, err := b.tier.Manifest()
	if err != nil {
		return -1, false
	}
	start, logEnd := b.store.LogStart(), b.store.LogEnd()
	if m.EndOffset() <= logEnd {
		return m.EndOffset(), false
	}
	if start < logEnd {
		if _, ok := m.ByLogOffset(start); !ok {
			b.log.Error("the cold tier holds log this replica lacks, but this replica holds history the cold tier lacks; "+
				"it is kept (remove the data directory to start over)", "log_start", start, "log_end", logEnd, "cold_tier_end", m.EndOffset())
			return -1, false
		}
	}
	return m.EndOffset(), true
}

func (b *Broker) kickRetention() {
	select {
	case b.retKick <- struct{}{}:
	default:
	}
}

// localSegment finds a sealed segment on local disk (the tier re-uploads a
// corrupt object from it).
func (b *Broker) localSegment(base int64) (tier.SegmentFile, bool) {
	if b.store == nil {
		return tier.SegmentFile{}, false
	}
	for _, sg := range b.store.Segments() {
		if sg.Base == base && sg.Sealed {
			return tier.SegmentFile{Base: sg.Base, Size: sg.Size, Path: sg.Path}, true
		}
	}
	return tier.SegmentFile{}, false
}

// rebuildMarker, in the data directory, marks a rebuild from the cold tier
// that has not yet recorded every queue's start on local disk.
const rebuildMarker = "tier-rebuild"

func writeMarker(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// closeTier stops the offloader and releases the block cache.
func (b *Broker) closeTier() {
	if b.tier != nil {
		b.tier.Close()
	}
	if b.cache != nil {
		b.cache.Close()
	}
}

// Tier returns the broker's cold tier, or nil (tests, tools).
func (b *Broker) Tier() *tier.Tier { return b.tier }

// coldPull serves a pull the hot tier cannot (the offset precedes the hot
// tier, or the queue exists only in the cold tier). It returns nil when the
// cold tier does not hold the offset either.
func (b *Broker) coldPull(req *remoting.Command, h *pullHeader, match func(int64) bool, hot store.GetResult) (*remoting.Command, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.MaxPullHold)
	defer cancel()
	stream := h.group + "\x00" + h.topic + "\x00" + strconv.Itoa(int(h.queueID))
	cr, err := b.tier.Read(ctx, h.topic, h.queueID, h.offset, int(h.maxMsgs), maxPullBytes, match, stream)
	if err == nil && b.reader() && cr.Status == tier.ReadNotCold && b.refreshManifest(ctx) {
		// The leader may have offloaded more than this reader has seen.
		cr, err = b.tier.Read(ctx, h.topic, h.queueID, h.offset, int(h.maxMsgs), maxPullBytes, match, stream)
	}
	if err != nil {
		b.log.Warn("cold read failed", "topic", h.topic, "queue", h.queueID, "offset", h.offset, "err", err)
		code := remoting.RespSystemError
		if errors.Is(err, tier.ErrUnavailable) || errors.Is(err, tier.ErrNotReady) || errors.Is(err, context.DeadlineExceeded) {
			code = remoting.RespSystemBusy
		}
		return errResponse(req, code, "cold tier read of %s/%d at %d failed, retry later: %v", h.topic, h.queueID, h.offset, err), false
	}
	hotHas := hot.MaxOffset > 0 && hot.Status != store.NoMatchedQueue && hot.Status != store.NoMessageInQueue
	minOff, maxOff := cr.First, max(hot.MaxOffset, cr.Next)
	if cr.Status == tier.ReadNotCold && cr.Next == 0 && cr.First == 0 {
		minOff = hot.MinOffset // the cold tier has nothing of this queue
	}
	if b.reader() && cr.Status == tier.ReadNotCold {
		// Not (yet) in the cold tier: the leader has it. Answer at once,
		// pointing the consumer at the leader (suggestWhichBrokerId 0) —
		// unless there is no live leader: then hold the pull as a leader
		// would, so that the consumer waits instead of spinning.
		if b.members.Load().leader == "" && h.sysFlag&remoting.PullFlagSuspend != 0 && h.suspendMillis > 0 {
			t := time.NewTimer(min(time.Duration(h.suspendMillis)*time.Millisecond, b.cfg.MaxPullHold))
			select {
			case <-t.C:
			case <-b.stopping:
			}
			t.Stop()
		}
		return b.pullResponse(req, remoting.RespPullNotFound, h.topic, h.offset, minOff, max(maxOff, h.offset), nil), false
	}
	code, next := remoting.RespSuccess, cr.NextOffset
	switch cr.Status {
	case tier.ReadFound:
	case tier.ReadNoMatch:
		code = remoting.RespPullRetryImmediately
	case tier.ReadTooSmall:
		code = remoting.RespPullOffsetMoved
	case tier.ReadNotCold:
		switch {
		case hotHas && h.offset < hot.MinOffset:
			// Between the cold and hot ranges (history lost before a tier
			// existed): skip to the hot tier.
			code, next = remoting.RespPullOffsetMoved, hot.MinOffset
		case h.offset == maxOff:
			code, next = remoting.RespPullNotFound, h.offset
		default:
			code, next = remoting.RespPullOffsetMoved, maxOff
		}
	}
	resp := b.pullResponse(req, code, h.topic, next, minOff, maxOff, cr.Records)
	if cr.Status == tier.ReadFound || cr.Status == tier.ReadNoMatch {
		// A replay of history: the next pulls go to the tier reader whose
		// turn this segment is (see suggestReader), sparing the leader.
		id := b.suggestReader(cr.Segment)
		if id == 0 && b.reader() {
			id = b.cfg.BrokerID // alone, or the members are not known yet
		}
		setSuggest(resp, id)
	}
	return resp, code == remoting.RespPullNotFound
}

// minOffset is the queue's first readable offset in either tier.
func (b *Broker) minOffset(topic string, q int32) int64 {
	hot := b.store.MinOffset(topic, q)
	if b.tier != nil {
		if first, _, ok := b.tier.Bounds(topic, q); ok && (first < hot || b.store.MaxOffset(topic, q) == 0) {
			return first
		}
	}
	return hot
}

// maxOffset is the queue's next offset across both tiers.
func (b *Broker) maxOffset(topic string, q int32) int64 {
	hot := b.store.MaxOffset(topic, q)
	if b.tier != nil {
		if _, next, ok := b.tier.Bounds(topic, q); ok {
			return max(hot, next)
		}
	}
	return hot
}

// offsetForTime searches both tiers by store timestamp.
func (b *Broker) offsetForTime(ctx context.Context, topic string, q int32, ts int64) (int64, error) {
	if b.tier != nil {
		if _, next, ok := b.tier.Bounds(topic, q); ok {
			off, found, err := b.tier.OffsetForTime(ctx, topic, q, ts)
			if err != nil {
				return 0, err
			}
			if found && off < next {
				return off, nil
			}
		}
	}
	return b.store.OffsetForTime(topic, q, ts)
}

// queryByKey searches the hot tier, then the cold tier for the rest.
func (b *Broker) queryByKey(ctx context.Context, topic, key string, maxN int, begin, end int64) ([][]byte, error) {
	recs, err := b.store.QueryByKey(topic, key, maxN, begin, end)
	if err != nil || b.tier == nil || len(recs) >= maxN {
		return recs, err
	}
	seen := make(map[int64]bool, len(recs))
	for _, r := range recs {
		if m, err := remoting.DecodeMessageExt(r); err == nil {
			seen[m.PhysicalOffset] = true
		}
	}
	cold, err := b.tier.QueryByKey(ctx, topic, key, maxN, begin, end)
	for _, r := range cold {
		if len(recs) >= maxN {
			break
		}
		if m, e := remoting.DecodeMessageExt(r); e == nil && !seen[m.PhysicalOffset] {
			recs = append(recs, r)
		}
	}
	return recs, err
}

// readAt reads the record at a commit-log offset from either tier.
func (b *Broker) readAt(ctx context.Context, off int64) ([]byte, error) {
	rec, err := b.store.ReadAt(off)
	if err == nil || b.tier == nil {
		return rec, err
	}
	if off >= b.store.Stats().FlushedTo {
		return nil, err
	}
	cold, cerr := b.tier.ReadAt(ctx, off)
	if cerr != nil {
		return nil, fmt.Errorf("%w (cold tier: %w)", err, cerr)
	}
	return cold, nil
}

// TierStatus is the body of a GET_TIER_STATUS response: the cold tier's
// state and, per queue, its cold and hot ranges.
type TierStatus struct {
	Cluster string            `json:"cluster"`
	Broker  string            `json:"broker"`
	Enabled bool              `json:"enabled"`
	Tier    *tier.Status      `json:"tier,omitempty"`
	Queues  []QueueTierStatus `json:"queues"`
}

// QueueTierStatus is one queue's ranges: cold [ColdFirst, ColdNext) and hot
// [HotMin, HotMax).
type QueueTierStatus struct {
	Topic     string `json:"topic"`
	QueueID   int32  `json:"queueId"`
	ColdFirst int64  `json:"coldFirst"`
	ColdNext  int64  `json:"coldNext"`
	HotMin    int64  `json:"hotMin"`
	HotMax    int64  `json:"hotMax"`
}

// handleTierStatus answers GET_TIER_STATUS (read-only).
func (b *Broker) handleTierStatus(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	st := TierStatus{Cluster: b.cfg.ClusterName, Broker: b.cfg.BrokerName, Enabled: b.tier != nil}
	type key struct {
		topic string
		q     int32
	}
	idx := map[key]int{}
	for _, q := range b.store.Queues() {
		idx[key{q.Topic, q.QueueID}] = len(st.Queues)
		st.Queues = append(st.Queues, QueueTierStatus{Topic: q.Topic, QueueID: q.QueueID, HotMin: q.MinOffset, HotMax: q.MaxOffset})
	}
	if b.tier != nil {
		ts := b.tier.Status()
		for _, q := range ts.Queues {
			i, ok := idx[key{q.Topic, q.QueueID}]
			if !ok {
				i = len(st.Queues)
				st.Queues = append(st.Queues, QueueTierStatus{Topic: q.Topic, QueueID: q.QueueID})
			}
			st.Queues[i].ColdFirst, st.Queues[i].ColdNext = q.First, q.Next
		}
		ts.Queues = nil
		st.Tier = &ts
	}
	slices.SortFunc(st.Queues, func(a, b QueueTierStatus) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.QueueID, b.QueueID))
	})
	body, err := json.Marshal(st)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	return okResponse(req, nil, body)
}
