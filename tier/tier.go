package tier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-mq/strata/cache"
)

// Config configures a Tier.
type Config struct {
	// Store is the object store that holds segment objects and the manifest.
	Store ObjectStore
	// Root is the key prefix of this broker's objects:
	// <prefix>/<cluster>/<broker>. Segment objects are <Root>/<base>.seg and
	// the manifest lives under <Root>/manifest/.
	Root string
	// StagingDir holds segment objects while they are built and uploaded
	// (on the broker's disk, so uploads never hold a segment in memory).
	StagingDir string
	// Cache holds decompressed blocks and queue sections for cold reads.
	// Default: a 512 MiB cache owned (and closed) by the Tier.
	Cache *cache.Cache
	// UploadConcurrency bounds concurrent segment uploads. Default 2.
	UploadConcurrency int
	// BlockSize is the uncompressed size of a segment object's blocks.
	// Default 1 MiB.
	BlockSize int
	// ReadTimeout bounds one cold read (object-store requests included), so
	// an unavailable store yields a retriable error instead of a hang.
	// Default 10s.
	ReadTimeout time.Duration
	// SnapshotEvery writes a manifest snapshot (and prunes the entries it
	// folds) after this many appended entries. Default 1000.
	SnapshotEvery int
	// LocalSegment reports where a sealed segment with this base is on the
	// broker's disk, if it still is: uploads read it, and a corrupt object is
	// re-uploaded from it.
	LocalSegment func(base int64) (SegmentFile, bool)
	// OnOffloaded, if set, is called (from the tier's goroutine) after a
	// segment's object and manifest entry are durable: the broker applies
	// its hot retention then.
	OnOffloaded func(SegmentEntry)
	// Standby starts the Tier without offloading: it loads the manifest
	// and serves reads, and sealed segments wait until Lead (a replica of
	// a broker group that is not, or not yet, its leader). Without it the
	// Tier offloads as the writer of epoch 0.
	Standby bool
	// OffloadLimit, if set, returns the log offset up to which segments may
	// be offloaded: a segment is uploaded only once its end is at or below
	// it. A replicated leader passes the end that no failover can take back
	// (its followers hold it), so the manifest never lists bytes a new
	// leader lacks.
	OffloadLimit func() int64
	// Logger receives the tier's logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics, if set, receives the tier's Prometheus metrics.
	Metrics prometheus.Registerer
}

// SegmentFile is a sealed commit-log segment on local disk.
type SegmentFile struct {
	Base, Size int64
	Path       string
}

// Tier is one broker's cold tier: it offloads sealed segments (object, then
// manifest entry) and serves reads of offloaded history.
type Tier struct {
	cfg     Config
	log     *slog.Logger
	store   ObjectStore
	cache   *cache.Cache
	ownsC   bool
	footers *lru.Cache[string, *Footer]
	met     *tierMetrics
	// runBlocks holds the cache keys of blocks on their way as part of a
	// read-ahead run (prefetchRun), not yet in the cache.
	runBlocks sync.Map

	mu       sync.Mutex
	man      *Manifest // nil until loaded
	loadErr  error
	pending  map[int64]*upload // sealed segments not yet in the manifest
	lastErr  error
	lastErrT time.Time
	kick     chan struct{}
	// leading: this Tier offloads, its manifest entries carrying epoch.
	leading bool
	epoch   int64

	// ctx bounds the offloader's object-store calls; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	quit   chan struct{}
	wg     sync.WaitGroup
}

// upload is the offload state of one sealed segment.
type upload struct {
	seg      SegmentFile
	running  bool
	done     *SegmentEntry // uploaded and verified, waiting for its turn in the manifest
	attempts int
	retryAt  time.Time
	err      error
	repair   bool // re-upload of an object found corrupt; not a new manifest entry
	disputed bool // the manifest lists another writer's object for this base
}

// ErrNotReady: the manifest could not be loaded yet (the object store is
// unreachable or misconfigured); cold reads and offload wait for it.
var ErrNotReady = errors.New("tier: cold tier manifest not loaded yet")

// New prepares a Tier and tries once to load the manifest; Start keeps
// retrying in the background if that failed (the error is returned too, so
// a caller that needs the manifest, such as a rebuild on an empty disk, can
// insist).
func New(ctx context.Context, cfg Config) (*Tier, error) {
	if cfg.Store == nil {
		return nil, errors.New("tier: Config.Store is nil")
	}
	if cfg.StagingDir == "" {
		return nil, errors.New("tier: Config.StagingDir is empty")
	}
	if cfg.UploadConcurrency <= 0 {
		cfg.UploadConcurrency = 2
	}
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = 1 << 20
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.SnapshotEvery <= 0 {
		cfg.SnapshotEvery = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.StagingDir, 0o755); err != nil {
		return nil, fmt.Errorf("tier: staging directory: %w", err)
	}
	t := &Tier{cfg: cfg, store: cfg.Store, log: cfg.Logger.With("component", "tier"), leading: !cfg.Standby,
		cache: cfg.Cache, pending: make(map[int64]*upload), kick: make(chan struct{}, 1), quit: make(chan struct{})}
	t.cleanStaging()
	if t.cache == nil {
		t.cache, t.ownsC = cache.New(cache.Config{Logger: cfg.Logger}), true
	}
	var err error
	if t.footers, err = lru.New[string, *Footer](256); err != nil {
		return nil, err
	}
	t.met = newTierMetrics(t, cfg.Metrics)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, t.loadManifest(ctx)
}

// cleanStaging removes the objects a crash left half built or half uploaded
// in the staging directory (the Tier owns it; uploads start afresh).
func (t *Tier) cleanStaging() {
	ents, err := os.ReadDir(t.cfg.StagingDir)
	if err != nil {
		t.log.Warn("list staging directory", "dir", t.cfg.StagingDir, "err", err)
		return
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || path.Ext(e.Name()) != ".seg" {
			continue
		}
		if err := os.Remove(filepath.Join(t.cfg.StagingDir, e.Name())); err != nil {
			t.log.Warn("remove stale staging file", "file", e.Name(), "err", err)
		}
	}
}

func (t *Tier) loadManifest(ctx context.Context) error {
	m, err := LoadManifest(ctx, t.store, t.cfg.Root)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.man != nil {
		// Loaded meanwhile by another caller (Reload and the offloader):
		// keep the view already in use, so every appender shares one.
		return nil
	}
	if err != nil {
		t.loadErr = fmt.Errorf("load manifest %s: %w", path.Join(t.cfg.Root, "manifest"), err)
		return t.loadErr
	}
	t.man, t.loadErr = m, nil
	for base := range t.pending {
		if m.HasBase(base) {
			delete(t.pending, base)
		}
	}
	return nil
}

// Reload loads the manifest again (or for the first time).
func (t *Tier) Reload(ctx context.Context) error {
	if m, err := t.Manifest(); err == nil {
		return m.Reload(ctx)
	}
	return t.loadManifest(ctx)
}

// Manifest returns the loaded manifest, or ErrNotReady.
func (t *Tier) Manifest() (*Manifest, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.man == nil {
		if t.loadErr != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotReady, t.loadErr)
		}
		return nil, ErrNotReady
	}
	return t.man, nil
}

// Start runs the offloader until Close.
func (t *Tier) Start() {
	t.wg.Add(1)
	go t.run()
}

// Close stops the offloader (uploads in progress are abandoned and retried
// at the next start) and waits for its goroutines.
func (t *Tier) Close() error {
	select {
	case <-t.quit:
		return nil
	default:
	}
	close(t.quit)
	t.cancel()
	t.wg.Wait()
	if t.ownsC {
		t.cache.Close()
	}
	return nil
}

// Offload queues a sealed segment for upload. It never blocks (the store
// calls it from its flush goroutine).
func (t *Tier) Offload(seg SegmentFile) {
	t.mu.Lock()
	if t.man != nil && t.man.HasBase(seg.Base) {
		t.mu.Unlock()
		return
	}
	if _, ok := t.pending[seg.Base]; !ok {
		t.pending[seg.Base] = &upload{seg: seg}
	}
	t.mu.Unlock()
	t.wake()
}

// Lead makes the Tier offload as the leader of epoch: its manifest entries
// carry epoch, and the manifest refuses them once a newer leader has
// appended (ErrStaleEpoch), at which point the Tier stops offloading
// (Follow). Sealed segments queued while standing by go first, so a new
// leader continues where the old one stopped.
func (t *Tier) Lead(epoch int64) {
	t.mu.Lock()
	t.leading, t.epoch = true, epoch
	t.mu.Unlock()
	t.log.Info("offloading as the group's leader", "epoch", epoch)
	t.wake()
}

// Follow stops offloading (uploads in progress finish but are not
// recorded); sealed segments stay queued for a later Lead.
func (t *Tier) Follow() {
	t.mu.Lock()
	was := t.leading
	t.leading = false
	t.mu.Unlock()
	if was {
		t.log.Info("offload stopped: not the group's leader")
	}
}

// Leading reports whether the Tier offloads, and as which epoch.
func (t *Tier) Leading() (epoch int64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.epoch, t.leading
}

func (t *Tier) wake() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// Offloaded reports whether the segment with this base has a durable,
// verified object and a durable manifest entry: only then may the local
// copy be deleted.
func (t *Tier) Offloaded(base int64) bool {
	m, err := t.Manifest()
	if err != nil || !m.HasBase(base) {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	u, ok := t.pending[base]
	return !ok || !u.disputed // another writer's entry does not count
}
