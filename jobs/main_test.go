package jobs

import (
	"testing"

	"go.uber.org/goleak"
)

// The run pipeline starts a worker per company and talks HTTP: every test
// must leave no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
