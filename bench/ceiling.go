package bench

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sys/unix"
)

// Ceilings are the machine's limits that Strata's figures are divided by.
type Ceilings struct {
	Disk        *DiskCeiling        `json:"disk,omitempty"`
	ObjectStore *ObjectStoreCeiling `json:"object_store,omitempty"`
}

// DiskCeiling is the data directory's filesystem's speed at what a broker
// with flush=sync does: sequential writes, each made durable before the
// next.
type DiskCeiling struct {
	Dir string `json:"dir"`
	// Direct is false when the filesystem refused O_DIRECT (tmpfs) and the
	// writes went through the page cache (still each fdatasync'ed).
	Direct bool `json:"direct"`
	// Blocks holds one measurement per block size.
	Blocks []DiskBlockResult `json:"blocks"`
	// Fio holds fio's figures for the same pattern, when fio is installed.
	Fio []FioResult `json:"fio,omitempty"`
	// FioNote says why there are no fio figures ("fio not installed").
	FioNote string `json:"fio_note,omitempty"`
}

// DiskBlockResult is one block size's sequential write + fdatasync speed.
type DiskBlockResult struct {
	BlockSize    int     `json:"block_size"`
	Writes       int64   `json:"writes"`
	Seconds      float64 `json:"seconds"`
	MiBPerSec    float64 `json:"mib_per_s"`
	WritesPerSec float64 `json:"writes_per_s"`
	// Latency of one write + fdatasync.
	Latency LatencySummary `json:"latency"`
}

// FioResult is one fio job's write figures.
type FioResult struct {
	BlockSize int     `json:"block_size"`
	MiBPerSec float64 `json:"mib_per_s"`
	IOPS      float64 `json:"iops"`
	Command   string  `json:"command"`
}

// Best returns the highest MiB/s of the direct-write measurements.
func (d *DiskCeiling) Best() DiskBlockResult {
	var b DiskBlockResult
	for _, r := range d.Blocks {
		if r.MiBPerSec > b.MiBPerSec {
			b = r
		}
	}
	return b
}

// diskCeilingBlocks are the block sizes measured: a large group commit, a
// typical one, and one 4 KiB page (a lone 1 KiB message rounds up to it).
var diskCeilingBlocks = []int{1 << 20, 64 << 10, 4 << 10}

// diskCeilingFileSize bounds the file the disk ceiling writes; writes wrap
// around at its end.
const diskCeilingFileSize = 1 << 30

// measureDisk measures DiskCeiling in dir: for each block size, aligned
// O_DIRECT writes at increasing offsets of a preallocated file, each
// followed by fdatasync, for perBlock; then fio, if installed, likewise.
func measureDisk(ctx context.Context, dir string, perBlock time.Duration) (*DiskCeiling, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("disk ceiling: %w", err)
	}
	res := &DiskCeiling{Dir: dir, Direct: true}
	for _, bs := range diskCeilingBlocks {
		r, direct, err := directWrites(ctx, filepath.Join(dir, "ceiling.dat"), bs, perBlock)
		if err != nil {
			return nil, fmt.Errorf("disk ceiling (%d-byte blocks): %w", bs, err)
		}
		res.Direct = res.Direct && direct
		res.Blocks = append(res.Blocks, r)
	}
	res.Fio, res.FioNote = runFio(ctx, dir, perBlock)
	return res, nil
}

// alignedBuf returns n bytes aligned to 4096 (what O_DIRECT needs on any
// device with logical blocks of 4096 bytes or fewer), filled with random
// bytes so that no layer can compress them.
func alignedBuf(n int) []byte {
	const align = 4096
	raw := make([]byte, n+align)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&raw[0])) % align); r != 0 {
		off = align - r
	}
	b := raw[off : off+n]
	_, _ = crand.Read(b)
	return b
}

// directWrites writes bs-byte blocks to path for d, each followed by
// fdatasync, and measures them. direct is false when O_DIRECT was refused.
func directWrites(ctx context.Context, path string, bs int, d time.Duration) (r DiskBlockResult, direct bool, err error) {
	direct = true
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC|unix.O_DIRECT, 0o644)
	if errors.Is(err, unix.EINVAL) {
		direct = false
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	}
	if err != nil {
		return r, direct, fmt.Errorf("open %s: %w", path, err)
	}
	defer os.Remove(path)
	defer unix.Close(fd)
	size := int64(diskCeilingFileSize)
	if err := unix.Fallocate(fd, 0, 0, size); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		return r, direct, fmt.Errorf("preallocate %s: %w", path, err)
	}
	buf := alignedBuf(bs)
	hist := newLatencyHist()
	var off int64
	start := time.Now()
	end := start.Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		t := time.Now()
		if _, err := unix.Pwrite(fd, buf, off); err != nil {
			return r, direct, fmt.Errorf("write %s: %w", path, err)
		}
		if err := unix.Fdatasync(fd); err != nil {
			return r, direct, fmt.Errorf("fdatasync %s: %w", path, err)
		}
		hist.Record(time.Since(t))
		r.Writes++
		if off += int64(bs); off+int64(bs) > size {
			off = 0
		}
	}
	if err := ctx.Err(); err != nil {
		return r, direct, err
	}
	r.BlockSize = bs
	r.Seconds = time.Since(start).Seconds()
	r.WritesPerSec = float64(r.Writes) / r.Seconds
	r.MiBPerSec = r.WritesPerSec * float64(bs) / (1 << 20)
	r.Latency = summarize(hist.Snapshot())
	r.Latency.Distribution = nil
	return r, direct, nil
}

// runFio runs fio, when installed, with the pattern of directWrites for
// the 1 MiB and 64 KiB blocks.
func runFio(ctx context.Context, dir string, d time.Duration) ([]FioResult, string) {
	bin, err := exec.LookPath("fio")
	if err != nil {
		return nil, "fio not installed (the direct-write figures above stand alone)"
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	var out []FioResult
	for _, bs := range diskCeilingBlocks[:2] {
		args := []string{"--name=strata-ceiling", "--directory=" + dir, "--rw=write",
			"--bs=" + strconv.Itoa(bs), "--size=1g", "--direct=1", "--fdatasync=1", "--ioengine=psync",
			"--runtime=" + strconv.Itoa(secs), "--time_based", "--output-format=json"}
		cmd := exec.CommandContext(ctx, bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		_ = os.Remove(filepath.Join(dir, "strata-ceiling.0.0"))
		if err != nil {
			return out, fmt.Sprintf("fio failed: %v: %s", err, tail(stderr.String(), 500))
		}
		var rep struct {
			Jobs []struct {
				Write struct {
					BwBytes float64 `json:"bw_bytes"`
					IOPS    float64 `json:"iops"`
				} `json:"write"`
			} `json:"jobs"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || len(rep.Jobs) == 0 {
			return out, fmt.Sprintf("fio output not understood: %v", err)
		}
		out = append(out, FioResult{BlockSize: bs, MiBPerSec: rep.Jobs[0].Write.BwBytes / (1 << 20),
			IOPS: rep.Jobs[0].Write.IOPS, Command: "fio " + joinArgs(args)})
	}
	return out, ""
}

// ObjectStoreInfo tells how to reach a target's object store (the cold
// tier's MinIO), for the object store's ceiling.
type ObjectStoreInfo struct {
	Endpoint  string
	AccessKey string
	SecretKey string
	// ObjectSize is the size of the objects the target uploads (one per
	// sealed commit-log segment).
	ObjectSize int64
	// Dir is the object store's data directory.
	Dir string
}

// ObjectStoreCeiling is the object store's raw GET speed over objects the
// size of the target's.
type ObjectStoreCeiling struct {
	Endpoint   string `json:"endpoint"`
	ObjectSize int64  `json:"object_size"`
	Objects    int    `json:"objects"`
	// WholeMiBPerSec: whole objects, one GET at a time.
	WholeMiBPerSec float64 `json:"whole_get_mib_per_s"`
	// RangedMiBPerSec: 1 MiB ranged GETs (a cold read fetches blocks of
	// about 1 MiB) from RangedConcurrency readers at once.
	RangedMiBPerSec   float64        `json:"ranged_1mib_get_mib_per_s"`
	RangedConcurrency int            `json:"ranged_concurrency"`
	RangedLatency     LatencySummary `json:"ranged_latency"`
}

// measureObjectStore uploads a few objects of info.ObjectSize random bytes
// into a bucket of its own, reads them back for d in each pattern, and
// deletes the bucket.
func measureObjectStore(ctx context.Context, info ObjectStoreInfo, d time.Duration) (*ObjectStoreCeiling, error) {
	c, err := minio.New(info.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(info.AccessKey, info.SecretKey, ""),
		Region: "us-east-1",
	})
	if err != nil {
		return nil, fmt.Errorf("object store ceiling: %w", err)
	}
	bucket := fmt.Sprintf("ceiling-%d", time.Now().UnixNano())
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		return nil, fmt.Errorf("object store ceiling: create bucket: %w", err)
	}
	size := max(info.ObjectSize, 1<<20)
	n := int(max(2, min(8, (256<<20)/size)))
	res := &ObjectStoreCeiling{Endpoint: info.Endpoint, ObjectSize: size, Objects: n, RangedConcurrency: 4}
	body := make([]byte, size)
	_, _ = crand.Read(body)
	keys := make([]string, n)
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, k := range keys {
			if k != "" {
				_ = c.RemoveObject(dctx, bucket, k, minio.RemoveObjectOptions{})
			}
		}
		_ = c.RemoveBucket(dctx, bucket)
	}()
	for i := range keys {
		k := fmt.Sprintf("seg-%04d", i)
		if _, err := c.PutObject(ctx, bucket, k, bytes.NewReader(body), size, minio.PutObjectOptions{}); err != nil {
			return nil, fmt.Errorf("object store ceiling: upload: %w", err)
		}
		keys[i] = k
	}
	body = nil
	get := func(key string, off, length int64) (int64, error) {
		var opts minio.GetObjectOptions
		if length > 0 {
			if err := opts.SetRange(off, off+length-1); err != nil {
				return 0, err
			}
		}
		obj, err := c.GetObject(ctx, bucket, key, opts)
		if err != nil {
			return 0, err
		}
		defer obj.Close()
		return io.Copy(io.Discard, obj)
	}
	// Whole objects, one at a time.
	var total int64
	start := time.Now()
	for i := 0; time.Since(start) < d || i == 0; i++ {
		got, err := get(keys[i%n], 0, 0)
		if err != nil {
			return nil, fmt.Errorf("object store ceiling: GET: %w", err)
		}
		total += got
	}
	res.WholeMiBPerSec = float64(total) / (1 << 20) / time.Since(start).Seconds()
	// 1 MiB ranges, RangedConcurrency readers.
	const rng = 1 << 20
	blocks := size / rng
	var next, bytesRead atomic.Int64
	var firstErr error
	var errOnce sync.Once
	hist := newLatencyHist()
	start = time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range res.RangedConcurrency {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				i := next.Add(1) - 1
				t := time.Now()
				got, err := get(keys[(i/blocks)%int64(n)], (i%blocks)*rng, rng)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				hist.Record(time.Since(t))
				bytesRead.Add(got)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("object store ceiling: ranged GET: %w", firstErr)
	}
	res.RangedMiBPerSec = float64(bytesRead.Load()) / (1 << 20) / time.Since(start).Seconds()
	res.RangedLatency = summarize(hist.Snapshot())
	res.RangedLatency.Distribution = nil
	return res, ctx.Err()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
