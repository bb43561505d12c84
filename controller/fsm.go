package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// member is a replica's replicated (raft) record: only its addresses.
type member struct {
	Addr   string `json:"addr"`
	HAAddr string `json:"haAddr"`
}

// groupState is a broker group's replicated (raft) state.
type groupState struct {
	Cluster   string           `json:"cluster"`
	Epoch     int64            `json:"epoch"`
	Leader    int64            `json:"leader"` // -1: none yet
	MinInSync int              `json:"minInSync"`
	Members   map[int64]member `json:"members"`
}

func (g groupState) clone() groupState {
	m := make(map[int64]member, len(g.Members))
	for id, v := range g.Members {
		m[id] = v
	}
	g.Members = m
	return g
}

// memberIDs returns the member ids in ascending order.
func (g groupState) memberIDs() []int64 {
	ids := make([]int64, 0, len(g.Members))
	for id := range g.Members {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// FSM command operations.
const (
	opJoin      = "join"      // add a member or update its addresses (creates the group)
	opElect     = "elect"     // set the leader of epoch current+1
	opMinInSync = "minInSync" // record the leader's min in-sync replicas
)

// command is a raft log entry (JSON).
type command struct {
	Op    string `json:"op"`
	Group string `json:"group"`

	// join
	Cluster string `json:"cluster,omitempty"`
	ID      int64  `json:"id"`
	Addr    string `json:"addr,omitempty"`
	HAAddr  string `json:"haAddr,omitempty"`

	// join (for a new group) and minInSync
	MinInSync int `json:"minInSync,omitempty"`

	// elect
	Epoch  int64 `json:"epoch,omitempty"`
	Leader int64 `json:"leader"`
}

// electResult is the FSM's answer to an elect command.
type electResult struct {
	Applied bool
	Epoch   int64 // the group's epoch after the command
	Leader  int64
}

// fsm is the controller's replicated state machine: the groups' epochs,
// leaders, min in-sync settings and member addresses. Liveness is not here.
type fsm struct {
	mu     sync.RWMutex
	groups map[string]groupState
}

func newFSM() *fsm { return &fsm{groups: map[string]groupState{}} }

var errBadCommand = errors.New("controller: bad fsm command")

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return fmt.Errorf("%w: %v", errBadCommand, err)
	}
	if c.Group == "" {
		return fmt.Errorf("%w: no group", errBadCommand)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.groups[c.Group]
	switch c.Op {
	case opJoin:
		if !ok {
			g = groupState{Leader: -1, Members: map[int64]member{}}
			if c.MinInSync > 0 {
				g.MinInSync = c.MinInSync
			}
		} else {
			g = g.clone()
		}
		if c.Cluster != "" {
			g.Cluster = c.Cluster
		}
		g.Members[c.ID] = member{Addr: c.Addr, HAAddr: c.HAAddr}
		f.groups[c.Group] = g
		return nil
	case opElect:
		if !ok {
			return electResult{Leader: -1}
		}
		if _, isMember := g.Members[c.Leader]; !isMember || c.Epoch != g.Epoch+1 {
			return electResult{Epoch: g.Epoch, Leader: g.Leader}
		}
		g.Epoch, g.Leader = c.Epoch, c.Leader
		f.groups[c.Group] = g // Members unchanged: no need to copy the map
		return electResult{Applied: true, Epoch: g.Epoch, Leader: g.Leader}
	case opMinInSync:
		if ok && c.MinInSync > 0 {
			g.MinInSync = c.MinInSync
			f.groups[c.Group] = g
		}
		return nil
	default:
		return fmt.Errorf("%w: op %q", errBadCommand, c.Op)
	}
}

// group returns a copy of a group's state.
func (f *fsm) group(name string) (groupState, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g, ok := f.groups[name]
	if !ok {
		return groupState{}, false
	}
	return g.clone(), true
}

// groupNames returns the group names in order.
func (f *fsm) groupNames() []string {
	f.mu.RLock()
	names := make([]string, 0, len(f.groups))
	for n := range f.groups {
		names = append(names, n)
	}
	f.mu.RUnlock()
	sort.Strings(names)
	return names
}

// Snapshot implements raft.FSM. Group states are never mutated in place
// (members maps are copied on change), so encoding now is consistent.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	data, err := json.Marshal(snapshotData{Version: 1, Groups: f.groups})
	if err != nil {
		return nil, err
	}
	return fsmSnapshot(data), nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s snapshotData
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("controller: restore snapshot: %w", err)
	}
	if s.Version != 1 {
		return fmt.Errorf("controller: restore snapshot: unknown version %d", s.Version)
	}
	if s.Groups == nil {
		s.Groups = map[string]groupState{}
	}
	for name, g := range s.Groups {
		if g.Members == nil {
			g.Members = map[int64]member{}
			s.Groups[name] = g
		}
	}
	f.mu.Lock()
	f.groups = s.Groups
	f.mu.Unlock()
	return nil
}

type snapshotData struct {
	Version int                   `json:"version"`
	Groups  map[string]groupState `json:"groups"`
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (fsmSnapshot) Release() {}
