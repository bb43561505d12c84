// Command baseline is the control of the cold-start benchmark
// (BenchmarkColdStart in package e2e): it prints, on a line
// "coldstart-ns N", the nanoseconds from COLDSTART_T0_UNIX_NANO to its own
// main, and exits. It measures what exec and the Go runtime's start-up
// cost on the machine, before any client does anything.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	t0, err := strconv.ParseInt(os.Getenv("COLDSTART_T0_UNIX_NANO"), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "coldstart/baseline: COLDSTART_T0_UNIX_NANO:", err)
		os.Exit(1)
	}
	fmt.Printf("coldstart-ns %d\n", time.Now().UnixNano()-t0)
}
