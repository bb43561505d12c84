package tier

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// manifestTimeout bounds one manifest operation (load, append, reload).
const manifestTimeout = 30 * time.Second

// uploadTimeout bounds one upload attempt of size bytes (put and
// verification): 30 s plus the time at 2 MiB/s.
func uploadTimeout(size int64) time.Duration {
	return 30*time.Second + time.Duration(size/(2<<20))*time.Second
}

// SegmentKey returns the object key of the segment with this base.
func SegmentKey(root string, base int64) string {
	return joinKey(root, fmt.Sprintf("%020d.seg", base))
}

func joinKey(root, name string) string {
	if root == "" {
		return name
	}
	return root + "/" + name
}

// backoff returns the wait before attempt n+1 (n ≥ 1): exponential from 1s,
// capped at a minute, with ±25% jitter so brokers do not retry in step.
func backoff(n int) time.Duration {
	d := time.Second << min(n-1, 6)
	d = min(d, time.Minute)
	return d*3/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// run is the offloader: it loads the manifest (retrying), starts uploads of
// pending segments (at most UploadConcurrency at once, oldest first, with
// backoff after failures) and appends their manifest entries in log order.
func (t *Tier) run() {
	defer t.wg.Done()
	ctx := t.ctx // cancelled by Close
	results := make(chan uploadResult)
	running := 0
	loadAttempts := 0
	var loadRetry time.Time
	sinceSnapshot := 0
	for {
		now := time.Now()
		if m, _ := t.Manifest(); m == nil && !now.Before(loadRetry) {
			lctx, lcancel := context.WithTimeout(ctx, manifestTimeout)
			err := t.loadManifest(lctx)
			lcancel()
			if m, _ := t.Manifest(); m != nil {
				loadAttempts = 0
				t.log.Info("cold tier manifest loaded", "segments", m.Len(), "end_offset", m.EndOffset())
			} else {
				loadAttempts++
				loadRetry = now.Add(backoff(loadAttempts))
				t.setErr(err)
				t.log.Warn("cold tier manifest not loaded; offload waits", "err", err, "retry_in", time.Until(loadRetry).Round(time.Millisecond))
			}
		}
		held := false
		if _, leading := t.Leading(); !leading {
			// A standby replica uploads and records nothing; what the
			// leader offloaded needs no upload here any more.
			if m, _ := t.Manifest(); m != nil {
				t.dropRecorded(m)
			}
		} else if m, _ := t.Manifest(); m != nil {
			sinceSnapshot += t.commitReady(ctx, m)
			if sinceSnapshot >= t.cfg.SnapshotEvery {
				sctx, scancel := context.WithTimeout(ctx, 10*manifestTimeout)
				if err := m.Snapshot(sctx); err != nil {
					t.log.Warn("manifest snapshot", "err", err)
				} else if _, err := m.Prune(sctx); err != nil {
					t.log.Warn("manifest prune", "err", err)
				}
				scancel()
				sinceSnapshot = 0
			}
			var ups []*upload
			ups, held = t.startable(now, t.cfg.UploadConcurrency-running)
			for _, u := range ups {
				running++
				t.wg.Add(1)
				go func(u *upload) {
					defer t.wg.Done()
					e, err := t.uploadSegment(ctx, u.seg)
					select {
					case results <- uploadResult{u, e, err}:
					case <-ctx.Done():
					}
				}(u)
			}
		}
		wait := t.nextWake(now, loadRetry)
		if held {
			// Segments wait for the followers (OffloadLimit): look again soon.
			wait = min(wait, offloadLimitPoll)
		}
		timer := time.NewTimer(wait)
		select {
		case <-t.quit:
			timer.Stop()
			return
		case <-t.kick:
		case r := <-results:
			running--
			t.finish(r)
		case <-timer.C:
		}
		timer.Stop()
	}
}

type uploadResult struct {
	u   *upload
	e   SegmentEntry
	err error
}

func (t *Tier) finish(r uploadResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r.u.running = false
	if r.err != nil && r.u.repair && errors.Is(r.err, fs.ErrNotExist) {
		// The local copy went (retention deleted it after the repair was
		// asked for): nothing to re-upload from. The object stays
		// unservable and is reported at each read.
		delete(t.pending, r.u.seg.Base)
		t.lastErr, t.lastErrT = r.err, time.Now()
		t.log.Error("corrupt segment object cannot be re-uploaded: its local copy is gone", "base", r.u.seg.Base, "err", r.err)
		return
	}
	if r.err != nil {
		r.u.attempts++
		r.u.err = r.err
		r.u.retryAt = time.Now().Add(backoff(r.u.attempts))
		t.lastErr, t.lastErrT = r.err, time.Now()
		t.met.uploadErrors.Inc()
		t.log.Warn("segment upload failed; will retry", "base", r.u.seg.Base, "attempt", r.u.attempts,
			"retry_in", time.Until(r.u.retryAt).Round(time.Millisecond), "err", r.err)
		return
	}
	r.u.attempts, r.u.err = 0, nil
	// The store answers again: segments waiting out a backoff go now.
	now := time.Now()
	for _, u := range t.pending {
		if u.err != nil && u.retryAt.After(now) {
			u.retryAt = now
		}
	}
	if r.u.repair {
		r.u.repair = false
		delete(t.pending, r.u.seg.Base)
		t.log.Info("corrupt segment object re-uploaded from the local copy", "key", r.e.Key)
		return
	}
	e := r.e
	r.u.done = &e
}

// dropRecorded forgets the pending segments that the manifest lists
// (offloaded by the leader while this replica stood by).
func (t *Tier) dropRecorded(m *Manifest) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for base, u := range t.pending {
		if !u.running && !u.repair && m.HasBase(base) {
			delete(t.pending, base)
		}
	}
}

// offloadLimitPoll is how often the offloader looks again at segments
// held back by Config.OffloadLimit.
const offloadLimitPoll = 200 * time.Millisecond

// startable marks up to n pending uploads as running and returns them,
// oldest first. held reports segments waiting for Config.OffloadLimit.
func (t *Tier) startable(now time.Time, n int) (out []*upload, held bool) {
	if n <= 0 {
		return nil, false
	}
	limit := int64(math.MaxInt64)
	if t.cfg.OffloadLimit != nil {
		limit = t.cfg.OffloadLimit()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, base := range t.pendingBasesLocked() {
		u := t.pending[base]
		if u.running || u.done != nil || now.Before(u.retryAt) {
			continue
		}
		if !u.repair && u.seg.Base+u.seg.Size > limit {
			held = true
			continue
		}
		u.running = true
		out = append(out, u)
		if len(out) == n {
			break
		}
	}
	return out, held
}

func (t *Tier) pendingBasesLocked() []int64 {
	bases := make([]int64, 0, len(t.pending))
	for b := range t.pending {
		bases = append(bases, b)
	}
	slices.Sort(bases)
	return bases
}

// commitReady appends the manifest entries of uploaded segments in log
// order, stopping at the first segment not uploaded yet. It returns how many
// it appended.
func (t *Tier) commitReady(ctx context.Context, m *Manifest) int {
	n := 0
	for {
		t.mu.Lock()
		var next *upload
		for _, base := range t.pendingBasesLocked() {
			u := t.pending[base]
			if u.repair {
				continue
			}
			if m.HasBase(base) {
				if e, ok := m.ByLogOffset(base); ok && u.done != nil &&
					(e.Key != u.done.Key || e.Size != u.done.Size || e.FooterCRC != u.done.FooterCRC) {
					// Another writer recorded this segment (after a
					// manifest conflict): its entry is not our upload, so
					// it proves nothing about our object. Keep the local
					// copy; an operator must look.
					if !u.disputed {
						u.disputed = true
						u.err = fmt.Errorf("segment %d: the manifest lists object %s (%d bytes) written by another broker, not ours (%s, %d bytes); keeping the local copy",
							base, e.Key, e.Size, u.done.Key, u.done.Size)
						t.lastErr, t.lastErrT = u.err, time.Now()
						t.log.Error("manifest lists another writer's object for a segment of this broker", "err", u.err)
					}
					continue
				}
				delete(t.pending, base)
				continue
			}
			if base < m.EndOffset() {
				// Older than the manifest's end: appending it would break log
				// order. Only a segment the manifest never got (offload was
				// off when it was sealed) can be here.
				t.log.Warn("sealed segment precedes the cold tier's end and cannot be offloaded", "base", base, "manifest_end", m.EndOffset())
				delete(t.pending, base)
				continue
			}
			next = u
			break
		}
		t.mu.Unlock()
		if next == nil || next.done == nil {
			return n
		}
		epoch, leading := t.Leading()
		if !leading {
			return n
		}
		entry := *next.done
		entry.Epoch = epoch
		actx, acancel := context.WithTimeout(ctx, manifestTimeout)
		e, err := m.Append(actx, entry)
		acancel()
		if err != nil {
			t.setErr(err)
			if errors.Is(err, ErrStaleEpoch) {
				// A newer leader has written the manifest: this broker
				// was deposed and must not record anything more.
				t.Follow()
				t.log.Error("a newer leader writes the cold tier's manifest; this broker stops offloading", "epoch", epoch, "err", err)
				return n
			}
			if errors.Is(err, ErrManifestConflict) {
				t.log.Error("another writer appended to this broker's manifest; reloading it", "err", err)
				rctx, rcancel := context.WithTimeout(ctx, manifestTimeout)
				err := m.Reload(rctx)
				rcancel()
				if err != nil {
					t.log.Warn("manifest reload", "err", err)
				}
			} else {
				t.log.Warn("manifest append failed; will retry", "base", next.seg.Base, "err", err)
			}
			return n
		}
		n++
		t.met.offloaded.Inc()
		t.mu.Lock()
		delete(t.pending, e.Base)
		t.mu.Unlock()
		t.log.Info("segment offloaded", "base", e.Base, "key", e.Key, "bytes", e.Size, "records", e.Records, "seq", e.Seq)
		if t.cfg.OnOffloaded != nil {
			t.cfg.OnOffloaded(e)
		}
	}
}

func (t *Tier) nextWake(now, loadRetry time.Time) time.Duration {
	wait := 5 * time.Second
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.man == nil {
		return max(time.Millisecond, min(wait, loadRetry.Sub(now)))
	}
	for _, u := range t.pending {
		if !u.running && u.done == nil {
			wait = min(wait, u.retryAt.Sub(now))
		}
	}
	return max(wait, time.Millisecond)
}

func (t *Tier) setErr(err error) {
	t.mu.Lock()
	t.lastErr, t.lastErrT = err, time.Now()
	t.mu.Unlock()
}

// uploadSegment builds the segment's object in the staging directory,
// uploads it, and verifies what the store holds: its size, and a footer
// read back from the store that matches the one built.
func (t *Tier) uploadSegment(ctx context.Context, seg SegmentFile) (SegmentEntry, error) {
	start := time.Now()
	key := SegmentKey(t.cfg.Root, seg.Base)
	f, err := os.Open(seg.Path)
	if err != nil {
		return SegmentEntry{}, fmt.Errorf("open segment %d: %w", seg.Base, err)
	}
	defer f.Close()
	stage := filepath.Join(t.cfg.StagingDir, fmt.Sprintf("%020d.seg", seg.Base))
	out, err := os.Create(stage)
	if err != nil {
		return SegmentEntry{}, fmt.Errorf("staging: %w", err)
	}
	defer os.Remove(stage)
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	foot, size, err := BuildSegmentObject(ctx, bw, bufio.NewReaderSize(f, 1<<20), seg.Base, seg.Size, BuildOptions{BlockSize: t.cfg.BlockSize})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return SegmentEntry{}, fmt.Errorf("build object of segment %d: %w", seg.Base, err)
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return SegmentEntry{}, err
	}
	// One attempt may take this long, so an object store that stops
	// answering fails the attempt (and is reported) instead of hanging.
	ctx, cancel := context.WithTimeout(ctx, uploadTimeout(size))
	defer cancel()
	if err := t.store.Put(ctx, key, out, size); err != nil {
		return SegmentEntry{}, fmt.Errorf("put %s: %w", key, err)
	}
	info, err := t.store.Stat(ctx, key)
	if err != nil {
		return SegmentEntry{}, fmt.Errorf("verify %s: %w", key, err)
	}
	if info.Size != size {
		return SegmentEntry{}, fmt.Errorf("verify %s: store holds %d bytes, uploaded %d", key, info.Size, size)
	}
	back, err := ReadFooter(ctx, t.store, key, size)
	if err != nil {
		return SegmentEntry{}, fmt.Errorf("verify %s: read footer back: %w", key, err)
	}
	if back.Base != foot.Base || back.End != foot.End || back.Records != foot.Records ||
		len(back.Blocks) != len(foot.Blocks) || len(back.Queues) != len(foot.Queues) {
		return SegmentEntry{}, fmt.Errorf("verify %s: footer read back differs from the one uploaded", key)
	}
	t.footers.Add(key, back)
	t.met.uploadBytes.Add(float64(size))
	t.met.uploadSeconds.Observe(time.Since(start).Seconds())
	e := SegmentEntry{
		Key: key, Base: seg.Base, End: seg.Base + seg.Size, Size: size, FooterCRC: foot.CRC,
		Records: foot.Records, MinTimestamp: foot.MinTimestamp, MaxTimestamp: foot.MaxTimestamp,
		Created: time.Now().UTC(),
	}
	for _, q := range foot.Queues {
		e.Queues = append(e.Queues, QueueRange{Topic: q.Topic, QueueID: q.QueueID, First: q.First, Next: q.First + q.Count,
			MinTimestamp: q.MinTimestamp, MaxTimestamp: q.MaxTimestamp})
	}
	return e, nil
}

// repair re-uploads the object of an offloaded segment found corrupt, from
// the local copy if the broker still has it. It reports whether it could.
func (t *Tier) repair(base int64) bool {
	if t.cfg.LocalSegment == nil {
		return false
	}
	seg, ok := t.cfg.LocalSegment(base)
	if !ok {
		return false
	}
	t.mu.Lock()
	if _, busy := t.pending[base]; !busy {
		t.pending[base] = &upload{seg: seg, repair: true}
	}
	t.mu.Unlock()
	t.wake()
	return true
}
