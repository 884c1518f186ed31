// Package e2e holds nxtcron's end-to-end tests: they build the real binary
// once (TestMain, without -race), run it as separate processes (serve, run,
// validate, runs, sandbox) in a temporary directory per test, talk to it over
// HTTP, signal it, and assert from the store (through the binary's own
// `runs -o json` and the HTTP API) and from the sinks' output files.
//
// The harness (harness_test.go, files_test.go) is meant to be reused by
// every end-to-end test: NewEnv gives a test its directory and process
// environment, WriteConfig and WriteJob write config.yaml and job files,
// Serve, StartSandbox and Run start the binary's verbs, Daemon and Sandbox
// speak their HTTP APIs, and eventually polls a condition with a deadline.
//
// The tests follow DESIGN.md "Tests that hold on 2 cores": they run
// sequentially (no t.Parallel), use short intervals and sandbox latency
// rather than sleeping, kill or signal a process only once the store shows
// the state the test needs, and bound every wait with a generous deadline.
// The whole package holds no production code.
package e2e
