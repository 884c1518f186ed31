// Package daemon is nxtcron's embeddable runtime. It wires the configuration,
// the store, the in-process sandbox, token sources, Business NXT clients, the
// job set, the scheduler and the HTTP server together.
//
// New prepares everything that can fail without side effects on the world;
// Start begins scheduling and serving; Stop drains running attempts (they
// are recorded interrupted and their claims released) and closes
// everything. Tests start a whole daemon on 127.0.0.1:0 and ask Addr for the
// address. Open gives the lighter Runtime the one-shot CLI verbs use.
package daemon
