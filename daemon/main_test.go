package daemon

import (
	"testing"

	"go.uber.org/goleak"
)

// A daemon runs a scheduler, an HTTP server, a store health loop and the
// sandbox: after Stop, none of their goroutines may remain.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
