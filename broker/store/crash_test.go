package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// The crash test re-executes the test binary as a child that appends from
// many goroutines and prints every acknowledged message; the parent kill -9s
// it at a random moment, reopens the store and checks that every
// acknowledged message is there, intact, at its offset, once, in order.

const crashChildEnv = "STRATA_STORE_CRASH_CHILD"

const (
	crashWriters = 16
	crashQueues  = 4
)

func crashConfig(dir string) Config {
	cfg := testConfig(dir)
	cfg.SegmentSize = 512 << 10 // many rolls under load
	cfg.CheckpointInterval = 20 * time.Millisecond
	return cfg
}

func crashBody(run, w, seq int) []byte {
	head := fmt.Sprintf("%d/%d/%d|", run, w, seq)
	size := len(head) + (run*7919+w*104729+seq*31)%3000
	b := bytes.Repeat([]byte{byte('A' + (run+w+seq)%26)}, size)
	copy(b, head)
	return b
}

// TestCrashChild is the child side; it does nothing unless re-executed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("crash-test child; run by TestCrashRecovery")
	}
	run, _ := strconv.Atoi(os.Getenv(crashChildEnv + "_RUN"))
	s, err := Open(context.Background(), crashConfig(dir))
	if err != nil {
		fmt.Printf("open-error %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("ready\n")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < crashWriters; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for seq := 0; ; seq++ {
				m := []remoting.MessageExt{{
					Topic: "crash", QueueID: int32(w % crashQueues), Body: crashBody(run, w, seq),
					Properties: remoting.AppendProperty(nil, remoting.PropKeys, fmt.Sprintf("r%dw%ds%d", run, w, seq)),
				}}
				if err := s.Append(context.Background(), m); err != nil {
					fmt.Printf("append-error %v\n", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Printf("ack %d %d %d %d %d .\n", run, w, seq, m[0].QueueID, m[0].QueueOffset)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
}

type crashAck struct {
	run, w, seq, qid int
	off              int64
}

func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in child")
	}
	kills := 12
	if testing.Short() {
		kills = 4
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	// acked[run][w] = highest acknowledged seq (-1: none).
	acked := map[int][]int{}
	var all []crashAck
	for run := 0; run < kills; run++ {
		acks, err := runCrashChild(t, dir, run, rng)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		hi := make([]int, crashWriters)
		for i := range hi {
			hi[i] = -1
		}
		for _, a := range acks {
			hi[a.w] = max(hi[a.w], a.seq)
		}
		acked[run] = hi
		all = append(all, acks...)
		verifyCrash(t, dir, run, acked, all)
	}
	t.Logf("%d kills, %d acknowledged messages verified", kills, len(all))
}

// runCrashChild starts a child, lets it acknowledge a random number of
// messages, kills it with SIGKILL and returns the acknowledgements it saw.
func runCrashChild(t *testing.T, dir string, run int, rng *rand.Rand) ([]crashAck, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashChildEnv+"_RUN="+strconv.Itoa(run))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	killAfter := 20 + rng.IntN(1500)
	var acks []crashAck
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	killed := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ack ") && strings.HasSuffix(line, " ."): // a whole line
			var a crashAck
			if _, err := fmt.Sscanf(line, "ack %d %d %d %d %d", &a.run, &a.w, &a.seq, &a.qid, &a.off); err != nil {
				return nil, fmt.Errorf("bad line %q", line)
			}
			acks = append(acks, a)
			if len(acks) == killAfter && !killed {
				cmd.Process.Kill() // SIGKILL: no chance to flush or close
				killed = true
			}
		case strings.Contains(line, "error"):
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("child: %s", line)
		}
	}
	cmd.Wait()
	if !killed {
		return nil, fmt.Errorf("child exited after %d acks before being killed", len(acks))
	}
	return acks, nil
}

// verifyCrash reopens the store and checks every acknowledged message and
// the order and uniqueness of everything stored.
func verifyCrash(t *testing.T, dir string, lastRun int, acked map[int][]int, acks []crashAck) {
	t.Helper()
	s, err := Open(context.Background(), crashConfig(dir))
	if err != nil {
		t.Fatalf("reopen after kill %d: %v", lastRun, err)
	}
	defer s.Close()
	type key struct{ run, w, seq int }
	where := map[key]int64{}
	for q := int32(0); q < crashQueues; q++ {
		next := map[[2]int]int{} // (run, writer) -> next expected seq
		for _, m := range readAll(t, s, "crash", q) {
			var k key
			if _, err := fmt.Sscanf(string(m.Body), "%d/%d/%d|", &k.run, &k.w, &k.seq); err != nil {
				t.Fatalf("queue %d offset %d: unreadable body", q, m.QueueOffset)
			}
			if !bytes.Equal(m.Body, crashBody(k.run, k.w, k.seq)) {
				t.Fatalf("queue %d offset %d: body of %v corrupted", q, m.QueueOffset, k)
			}
			if int32(k.w%crashQueues) != q {
				t.Fatalf("message %v in queue %d", k, q)
			}
			rw := [2]int{k.run, k.w}
			if k.seq != next[rw] {
				t.Fatalf("queue %d offset %d: writer %v seq %d, want %d (lost, duplicated or reordered)", q, m.QueueOffset, rw, k.seq, next[rw])
			}
			next[rw]++
			where[k] = m.QueueOffset
		}
		// Every acknowledged seq of every run must be present.
		for run, hi := range acked {
			for w := q; w < crashWriters; w += crashQueues {
				if got := next[[2]int{run, int(w)}] - 1; got < hi[w] {
					t.Fatalf("after kill %d: run %d writer %d: stored up to seq %d, but %d was acknowledged", lastRun, run, w, got, hi[w])
				}
			}
		}
	}
	for _, a := range acks {
		if off, ok := where[key{a.run, a.w, a.seq}]; !ok || off != a.off {
			t.Fatalf("acknowledged %+v found at offset %d (present %v)", a, off, ok)
		}
	}
}
