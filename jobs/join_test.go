package jobs

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

func TestJoinErrors(t *testing.T) {
	badQuery := fmt.Errorf("company 1001: %w", permanent(errors.New("graphql errors: unknown field")))
	truncated := fmt.Errorf("company 1003: %w", permanent(errors.New("nested x truncated at 1")))
	fenced := fmt.Errorf("company 1002: committing watermark: %w", store.ErrFenced)
	interrupted := fmt.Errorf("company 1004: %w", ErrInterrupted)
	cancelled := fmt.Errorf("company 1005: fetching page 2: %w", context.Canceled)

	require.NoError(t, joinErrors(nil))
	require.Same(t, fenced, joinErrors([]error{fenced}))

	tests := []struct {
		name      string
		errs      []error
		msg       string
		permanent bool
		is        []error
		isNot     []error
	}{
		{
			name:      "every company permanent",
			errs:      []error{badQuery, truncated},
			msg:       "company 1001: graphql errors: unknown field; company 1003: nested x truncated at 1",
			permanent: true,
		},
		{
			name:  "one retryable company makes the whole retryable",
			errs:  []error{badQuery, fenced},
			msg:   "company 1001: graphql errors: unknown field; company 1002: committing watermark: fencing token superseded",
			is:    []error{store.ErrFenced},
			isNot: []error{ErrInterrupted},
		},
		{
			name:  "interrupted and fenced companies are both seen",
			errs:  []error{interrupted, fenced},
			msg:   "company 1004: interrupted by shutdown; company 1002: committing watermark: fencing token superseded",
			is:    []error{ErrInterrupted, store.ErrFenced},
			isNot: []error{context.Canceled},
		},
		{
			name: "a cancelled context is seen",
			errs: []error{interrupted, cancelled, truncated},
			msg:  "company 1004: interrupted by shutdown; company 1005: fetching page 2: context canceled; company 1003: nested x truncated at 1",
			is:   []error{ErrInterrupted, context.Canceled},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := joinErrors(tt.errs)
			require.EqualError(t, err, tt.msg)
			require.Equal(t, tt.permanent, errors.Is(err, ErrPermanent))
			for _, target := range tt.is {
				require.ErrorIs(t, err, target)
			}
			for _, target := range tt.isNot {
				require.NotErrorIs(t, err, target)
			}
		})
	}
}
