package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/nxtcron/nxtcron/store"
)

var _ store.Budget = (*Store)(nil)

// sqlTakeBudget refills key $1's bucket by the database time since its
// last take (at $4 requests per second, up to capacity $2), grants up to
// $3 whole requests and returns the grant and what is left, in one
// statement: concurrent takers queue on the row and each sees the level
// the one before left. A new bucket starts full. updated_at never moves
// back (a taker whose transaction began earlier refills nothing).
const sqlTakeBudget = `
INSERT INTO {schema}.request_budgets AS b (key, tokens, granted, updated_at)
VALUES ($1::text, $2::double precision - $3::integer, $3::integer, now())
ON CONFLICT (key) DO UPDATE SET
    granted    = least($3::integer, floor(` + sqlBudgetLevel + `)::integer),
    tokens     = ` + sqlBudgetLevel + ` - least($3::integer, floor(` + sqlBudgetLevel + `)::integer),
    updated_at = greatest(b.updated_at, now())
RETURNING granted, tokens`

// sqlBudgetLevel is the bucket's level at now(), before the grant: the
// stored level plus the refill since updated_at (none when that is later).
const sqlBudgetLevel = `least($2::double precision,
        b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::double precision) * $4::double precision)`

// TakeBudget takes up to want requests from key's bucket (store.Budget).
func (s *Store) TakeBudget(ctx context.Context, key string, want, perMinute, capacity int) (int, time.Duration, error) {
	b, ok := store.NewBudgetBucket(want, perMinute, capacity)
	if !ok {
		return 0, 0, fmt.Errorf("taking request budget %q: %d requests per minute: want at least 2", key, perMinute)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	var (
		granted int
		level   float64
	)
	if err := s.pool.QueryRow(ctx, s.bq, key, b.Capacity, b.Want, b.RefillPerSecond()).Scan(&granted, &level); err != nil {
		return 0, 0, fmt.Errorf("taking request budget %q: %w", key, err)
	}
	if granted >= b.Want {
		return granted, 0, nil
	}
	return granted, b.RetryAfter(level), nil
}
