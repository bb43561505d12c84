//go:build race

package e2e

// raceDetector is true when the tests run with -race. rocketmq-client-go
// itself has data races (its orderly consumer's process queue; its client's
// close flag against in-flight rebalances), so tests that reach them are
// skipped under -race. STRATA_E2E_RACE=1 builds the broker with -race
// instead, which checks Strata's side.
const raceDetector = true
