package web_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Manual runs started through the API run in the scheduler's goroutines:
// every test must leave none behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
