package ha

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Epoch is one leadership of a broker group: from log offset Start on, the
// log was written by the leader of epoch Epoch (Kafka's leader epochs,
// RocketMQ's epoch file). Epochs increase along the log.
type Epoch struct {
	Epoch int64 `json:"epoch"`
	Start int64 `json:"start"`
}

// History is a replica's epochs, in increasing order of epoch and start.
type History []Epoch

// maxHistory bounds the epochs a leader sends and a replica keeps: one per
// failover.
const maxHistory = 4096

// Last returns the newest epoch, 0 for none.
func (h History) Last() int64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].Epoch
}

// At returns the epoch that wrote the log just before offset end: the last
// epoch starting at or before end (0 for none).
func (h History) At(end int64) int64 {
	i := sort.Search(len(h), func(i int) bool { return h[i].Start > end })
	if i == 0 {
		return 0
	}
	return h[i-1].Epoch
}

// EndOf returns where epoch e's part of the log ends: the start of the
// first later epoch, or logEnd when e is the newest.
func (h History) EndOf(e, logEnd int64) int64 {
	for _, x := range h {
		if x.Epoch > e {
			return min(x.Start, logEnd)
		}
	}
	return logEnd
}

// Lead returns h for a replica that becomes leader of epoch e with its log
// ending at end: epochs that started past its end (written by others,
// never copied here) go, and e starts at end.
func (h History) Lead(e, end int64) History {
	out := make(History, 0, len(h)+1)
	for _, x := range h {
		if x.Start <= end && x.Epoch < e {
			out = append(out, x)
		}
	}
	out = append(out, Epoch{Epoch: e, Start: end})
	if len(out) > maxHistory {
		out = out[len(out)-maxHistory:]
	}
	return out
}

// valid reports whether h increases in both epoch and start.
func (h History) valid() bool {
	for i := 1; i < len(h); i++ {
		if h[i].Epoch <= h[i-1].Epoch || h[i].Start < h[i-1].Start {
			return false
		}
	}
	return len(h) <= maxHistory
}

// LoadHistory reads the history file at path; a missing file is an empty
// history.
func LoadHistory(path string) (History, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ha: read epochs: %w", err)
	}
	var h History
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("ha: epochs file %s: %w", path, err)
	}
	if !h.valid() {
		return nil, fmt.Errorf("ha: epochs file %s does not increase", path)
	}
	return h, nil
}

// SaveHistory replaces the history file at path durably (write, fsync,
// rename, fsync the directory).
func SaveHistory(path string, h History) error {
	if !h.valid() {
		return fmt.Errorf("ha: epochs %v do not increase", h)
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("ha: save epochs: %w", err)
	}
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(path)); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("ha: save epochs: %w", err)
	}
	return nil
}
