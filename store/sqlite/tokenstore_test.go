package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/storetest"
)

func TestTokenStoreConformance(t *testing.T) {
	storetest.RunTokens(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "nxtcron.db"))
	})
}
