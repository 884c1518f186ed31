package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/nxtcron/nxtcron/store"
)

var _ store.Budget = (*Store)(nil)

// qTakeBudget refills key's bucket by the database time since its last take
// (at @rate requests per second, up to @capacity), grants up to @want whole
// requests and returns the grant and what is left. A new bucket starts full.
// Times are fixed-width UTC text, so max() on them is the later instant.
const qTakeBudget = `
INSERT INTO request_budgets (key, tokens, granted, updated_at)
VALUES (@key, @capacity - @want, @want, @now)
ON CONFLICT (key) DO UPDATE SET
    granted    = min(@want, CAST(` + sqlBudgetLevel + ` AS INTEGER)),
    tokens     = ` + sqlBudgetLevel + ` - min(@want, CAST(` + sqlBudgetLevel + ` AS INTEGER)),
    updated_at = max(request_budgets.updated_at, @now)
RETURNING granted, tokens`

// sqlBudgetLevel is the bucket's level at @now, before the grant: the stored
// level plus the refill since updated_at (none when the clock went back).
const sqlBudgetLevel = `min(@capacity, request_budgets.tokens +
        max(0.0, (julianday(@now) - julianday(request_budgets.updated_at)) * 86400.0) * @rate)`

// TakeBudget takes up to want requests from key's bucket (store.Budget).
func (s *Store) TakeBudget(ctx context.Context, key string, want, perMinute, capacity int) (int, time.Duration, error) {
	b, ok := store.NewBudgetBucket(want, perMinute, capacity)
	if !ok {
		return 0, 0, fmt.Errorf("taking request budget %q: %d requests per minute: want at least 2", key, perMinute)
	}
	var (
		granted int
		level   float64
	)
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		return tx.QueryRowContext(ctx, qTakeBudget,
			sql.Named("key", key), sql.Named("want", b.Want), sql.Named("capacity", b.Capacity),
			sql.Named("rate", b.RefillPerSecond()), sql.Named("now", now),
		).Scan(&granted, &level)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("taking request budget %q: %w", key, err)
	}
	if granted >= b.Want {
		return granted, 0, nil
	}
	return granted, b.RetryAfter(level), nil
}
