// Package provision installs the third-party servers Strata's tests and
// benchmarks run for real (MinIO, nats-server): `go install` of a pinned
// module version into a per-machine cache directory, once, under a file
// lock so that concurrent test processes build it once.
package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CacheDir returns the directory a tool's version is installed into:
// <user cache dir>/strata/<name>/<version>.
func CacheDir(name, version string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("provision: user cache directory: %w", err)
	}
	return filepath.Join(base, "strata", name, version), nil
}

// GoBinary returns the path of the binary `go install pkg@version` makes,
// building it into CacheDir(name, version) first if it is not there yet.
// pkg is the package path of the main package; the binary is named after
// its last element (a trailing /vN major-version element is skipped, as
// the go command does). logf (may be nil) reports progress: a build takes
// minutes.
func GoBinary(ctx context.Context, pkg, version, name string, logf func(format string, args ...any)) (string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir, err := CacheDir(name, version)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, binaryName(pkg))
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("provision: create %s: %w", dir, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, ".lock"), name, logf)
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // built by another process while we waited
		return bin, nil
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", fmt.Errorf("provision: create build directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("provision: the go command is needed to build %s: %w", name, err)
	}
	logf("provision: building %s %s (takes a few minutes, once per machine)", name, version)
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "install", pkg+"@"+version)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("provision: go install %s@%s: %w\n%s", pkg, version, err, tail(out.String(), 4000))
	}
	if err := os.Rename(filepath.Join(tmp, binaryName(pkg)), bin); err != nil {
		return "", fmt.Errorf("provision: install the %s binary: %w", name, err)
	}
	logf("provision: built %s in %v", name, time.Since(start).Round(time.Second))
	return bin, nil
}

// binaryName is the name go install gives the binary of pkg.
func binaryName(pkg string) string {
	base := path.Base(pkg)
	if len(base) > 1 && base[0] == 'v' && strings.Trim(base[1:], "0123456789") == "" {
		base = path.Base(path.Dir(pkg))
	}
	return base
}

// lockFile takes an exclusive flock on p, polling so ctx can end the wait.
func lockFile(ctx context.Context, p, name string, logf func(string, ...any)) (func(), error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("provision: open lock file: %w", err)
	}
	logged := false
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("provision: lock %s: %w", p, err)
		}
		if !logged {
			logf("provision: waiting for another process building %s (lock %s)", name, p)
			logged = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("provision: waiting for the %s build lock: %w", name, ctx.Err())
		case <-tick.C:
		}
	}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
