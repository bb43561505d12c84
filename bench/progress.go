package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressLine writes a status line: on a terminal it rewrites one line in
// place (\r), otherwise it writes plain lines. A nil *progressLine is silent.
type progressLine struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	last     int       // length of the line on screen (tty)
	lastLine time.Time // when the last plain line was written (not a tty)
}

func newProgressLine(w io.Writer) *progressLine {
	if w == nil {
		return nil
	}
	return &progressLine{w: w, tty: isTerminal(w)}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// update shows s as the current status. Off a terminal it writes at most
// a line a second (later updates within the second are dropped).
func (p *progressLine) update(s string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		if now := time.Now(); now.Sub(p.lastLine) >= 900*time.Millisecond {
			fmt.Fprintln(p.w, s)
			p.lastLine = now
		}
		return
	}
	pad := ""
	if n := p.last - len(s); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprint(p.w, "\r"+s+pad)
	p.last = len(s)
}

// done ends the current status line (on a terminal, moves to a new line).
func (p *progressLine) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.last > 0 {
		fmt.Fprintln(p.w)
	}
	p.last = 0
}

// logf prints a message on a line of its own.
func (p *progressLine) logf(format string, args ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.last > 0 {
		fmt.Fprintln(p.w)
		p.last = 0
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}
