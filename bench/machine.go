package bench

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine describes where the benchmark ran.
type Machine struct {
	CPUModel  string `json:"cpu_model"`
	Cores     int    `json:"cores"`
	MemBytes  int64  `json:"mem_bytes"`
	Kernel    string `json:"kernel"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	GoVersion string `json:"go_version"`
	Disk      Disk   `json:"disk"`
	// LoadStart and LoadEnd are the 1-minute load averages when the run
	// began and ended: above Cores, other work shared the machine and the
	// numbers are noisy.
	LoadStart float64 `json:"load_start"`
	LoadEnd   float64 `json:"load_end"`
}

// loadAvg returns the 1-minute load average, 0 when unknown.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// Disk describes the filesystem and device of the data directory.
type Disk struct {
	Dir        string `json:"dir"`
	Mount      string `json:"mount"`
	Device     string `json:"device"`
	FSType     string `json:"fs_type"`
	Model      string `json:"model,omitempty"`
	Rotational *bool  `json:"rotational,omitempty"`
	// LogicalBlockSize is the device's logical block size (O_DIRECT's
	// alignment), 0 when unknown.
	LogicalBlockSize int `json:"logical_block_size,omitempty"`
}

func machineInfo(dataDir string) Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemBytes = kb << 10
				}
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	m.Disk = diskInfo(dataDir)
	m.LoadStart = loadAvg()
	return m
}

// diskInfo finds dir's mount (the longest mount point that contains it, in
// /proc/self/mountinfo) and what sysfs says of its block device.
func diskInfo(dir string) Disk {
	d := Disk{Dir: dir}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return d
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return d
	}
	var majmin string
	for line := range strings.Lines(string(b)) {
		// id parent major:minor root mountpoint options [optional…] - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 2 {
			continue
		}
		mp := f[4]
		if mp != "/" && abs != mp && !strings.HasPrefix(abs, mp+"/") {
			continue
		}
		if len(mp) >= len(d.Mount) {
			d.Mount, d.FSType, d.Device, majmin = mp, g[0], g[1], f[2]
		}
	}
	if majmin == "" {
		return d
	}
	sys := "/sys/dev/block/" + majmin
	readSys := func(p string) string {
		b, err := os.ReadFile(filepath.Join(sys, p))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	q := "queue"
	if _, err := os.Stat(filepath.Join(sys, "partition")); err == nil {
		q = "../queue" // a partition: the queue is its disk's
	}
	if v := readSys(q + "/rotational"); v != "" {
		rot := v == "1"
		d.Rotational = &rot
	}
	d.LogicalBlockSize, _ = strconv.Atoi(readSys(q + "/logical_block_size"))
	d.Model = readSys("device/model")
	if d.Model == "" {
		d.Model = readSys("../device/model")
	}
	return d
}
