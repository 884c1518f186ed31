package postgres_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t)
	})
}

func TestTokenStoreConformance(t *testing.T) {
	storetest.RunTokens(t, func(t *testing.T) store.Store {
		return open(t)
	})
}

func TestBudgetConformance(t *testing.T) {
	storetest.RunBudget(t, func(t *testing.T) store.Store {
		return open(t)
	})
}
