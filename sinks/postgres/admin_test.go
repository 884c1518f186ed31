package postgres

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sinks"
)

func TestWatermarkAdmin(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	ctx := context.Background()

	// Before any run there is no state table: nothing to list or reset, and
	// setting says what to do.
	fresh := h.open(cfg)
	wms, err := fresh.Watermarks(ctx, "associates")
	require.NoError(t, err)
	require.Empty(t, wms)
	n, err := fresh.ResetWatermarks(ctx, "associates", nil)
	require.NoError(t, err)
	require.Zero(t, n)
	require.ErrorContains(t, fresh.SetWatermark(ctx, "associates", 1001, "2026-01-01T00:00:00.000"), "run the job once before setting a watermark")

	run := h.run(associateFields)
	s := h.prepared(cfg, run)
	h.commit(s, run, 1001, &sinks.Watermark{Value: "2026-03-01T10:00:00.000", Keys: []byte(`{"[1]":"2026-03-01T10:00:00.000"}`)}, []sinks.Row{associate(1, "A")})
	h.commit(s, run, 1002, &sinks.Watermark{Value: "2026-03-02T10:00:00.000"}, []sinks.Row{associate(1, "B")})

	admin := h.open(cfg)
	wms, err = admin.Watermarks(ctx, run.Job)
	require.NoError(t, err)
	require.Len(t, wms, 2)
	require.Equal(t, int64(1001), wms[0].Company)
	require.Equal(t, "2026-03-01T10:00:00.000", wms[0].Value)
	require.Equal(t, "2026-03-02T10:00:00.000", wms[1].Value)

	// Set moves the value and forgets the lookback keys; the pipeline reads it.
	require.NoError(t, admin.SetWatermark(ctx, run.Job, 1001, "2025-01-01T00:00:00.000"))
	wm, err := admin.Watermark(ctx, run.Job, 1001)
	require.NoError(t, err)
	require.Equal(t, &sinks.Watermark{Value: "2025-01-01T00:00:00.000"}, wm)

	// Reset of one company, then of the rest; the fences stay, so the
	// attempt that committed can no longer be outrun by an older one.
	c := int64(1001)
	n, err = admin.ResetWatermarks(ctx, run.Job, &c)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	wm, err = admin.Watermark(ctx, run.Job, 1001)
	require.NoError(t, err)
	require.Nil(t, wm)
	n, err = admin.ResetWatermarks(ctx, run.Job, nil)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 2, h.count(`SELECT count(*) FROM `+ident(h.schema, stateTable)+` WHERE job = $1 AND fence = $2`, run.Job, run.Fence))
}
