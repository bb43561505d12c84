// Package e2e holds Strata's end-to-end tests. They build the real strata
// binary once per run, start `strata standalone` as a child process on free
// loopback ports with a temporary data directory, and drive it with the
// unmodified github.com/apache/rocketmq-client-go/v2 and with raw TCP.
//
//	go test -count=1 ./e2e/
//
// Set STRATA_E2E_RACE=1 to build the broker binary with the race detector,
// STRATA_E2E_BIN to use a binary built elsewhere instead, and
// STRATA_E2E_VERBOSE=1 to print every broker's log.
package e2e
