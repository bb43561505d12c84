package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the CPU time (user + system, all threads) process pid has
// used so far, in seconds, from /proc/<pid>/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may itself hold spaces and parentheses, so fields count from the last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat: %d fields after the name", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("malformed /proc stat: %w", err)
	}
	return float64(ut+st) / clockTicks, nil
}

// procMem returns a process's resident set size now (VmRSS) and its peak
// (VmHWM), in bytes, from /proc/<pid>/status.
func procMem(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	return parseStatusMem(b)
}

func parseStatusMem(b []byte) (rss, peak int64, err error) {
	var seen int
	for line := range strings.Lines(string(b)) {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("malformed /proc status line %q", strings.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("malformed /proc status line %q: %w", strings.TrimSpace(line), err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
		seen++
	}
	if seen != 2 {
		return 0, 0, errors.New("no VmRSS and VmHWM in /proc status (a kernel thread, or an exited process)")
	}
	return rss, peak, nil
}

// resetPeakRSS resets a process's VmHWM to its current RSS (writing 5 to
// /proc/<pid>/clear_refs, Linux 4.0 and later), so that a later VmHWM is
// the peak of the measured window rather than of the process's life.
func resetPeakRSS(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS of pid %d: %w", pid, err)
	}
	return nil
}

// procName returns a process's command name (/proc/<pid>/comm).
func procName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// ProcStats is what one server process used during a measured window.
type ProcStats struct {
	Pid  int    `json:"pid"`
	Name string `json:"name"`
	// CPUSeconds is user + system CPU time over the window.
	CPUSeconds float64 `json:"cpu_seconds"`
	// IdleRSS is the resident set size after start-up, before any load.
	IdleRSS int64 `json:"idle_rss_bytes"`
	// PeakRSS is the highest resident set size (VmHWM): over the window
	// when PeakOverWindow, else over the process's life so far.
	PeakRSS        int64 `json:"peak_rss_bytes"`
	PeakOverWindow bool  `json:"peak_over_window"`
}

// procMeter measures a target's processes over one window.
type procMeter struct {
	pids   []int
	idle   map[int]int64
	cpu0   map[int]float64
	resetp map[int]bool
}

// startMeter samples CPU time and resets peak RSS; idle holds the idle RSS
// of each pid (taken after the target started).
func startMeter(pids []int, idle map[int]int64) *procMeter {
	m := &procMeter{pids: pids, idle: idle, cpu0: map[int]float64{}, resetp: map[int]bool{}}
	for _, pid := range pids {
		if c, err := procCPU(pid); err == nil {
			m.cpu0[pid] = c
		}
		m.resetp[pid] = resetPeakRSS(pid) == nil
	}
	return m
}

// stop returns each process's figures for the window since startMeter.
func (m *procMeter) stop() []ProcStats {
	out := make([]ProcStats, 0, len(m.pids))
	for _, pid := range m.pids {
		ps := ProcStats{Pid: pid, Name: procName(pid), IdleRSS: m.idle[pid], PeakOverWindow: m.resetp[pid]}
		if c, err := procCPU(pid); err == nil {
			ps.CPUSeconds = c - m.cpu0[pid]
		}
		if _, peak, err := procMem(pid); err == nil {
			ps.PeakRSS = peak
		}
		out = append(out, ps)
	}
	return out
}

// idleRSS samples the RSS of each pid.
func idleRSS(pids []int) map[int]int64 {
	out := map[int]int64{}
	for _, pid := range pids {
		if rss, _, err := procMem(pid); err == nil {
			out[pid] = rss
		}
	}
	return out
}

// totalCPU sums the processes' CPU seconds.
func totalCPU(ps []ProcStats) float64 {
	var s float64
	for _, p := range ps {
		s += p.CPUSeconds
	}
	return s
}
