package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sinks"
	"github.com/nxtcron/nxtcron/store"
)

func TestUpsertTypedColumns(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	run := h.run(associateFields)
	s := h.prepared(cfg, run)
	h.commit(s, run, 1001, nil, []sinks.Row{associate(1, "Fjord Fisk AS"), associate(2, "Berg Bygg")}, []sinks.Row{associate(3, "Sjø og Land")})
	h.commit(s, run, 1002, nil, []sinks.Row{associate(1, "Other company")})

	require.Equal(t, map[string]string{
		"company_no":         "bigint",
		"associate_no":       "bigint",
		"name":               "text",
		"credit_limit":       "numeric",
		"active":             "boolean",
		"changed_timestamp":  "timestamp without time zone",
		"gln":                "bigint",
		"joinup_country":     "jsonb",
		"tags":               "jsonb",
		"_nxtcron_run_id":    "uuid",
		"_nxtcron_loaded_at": "timestamp with time zone",
	}, h.columnTypes("associate"))

	var (
		name    string
		limit   string
		changed string
		country string
		runID   string
	)
	require.NoError(t, h.admin.QueryRow(context.Background(), `SELECT name, credit_limit::text, changed_timestamp::text, joinup_country->>'name', _nxtcron_run_id::text
FROM `+ident(h.schema, "associate")+` WHERE company_no = 1001 AND associate_no = 3`).Scan(&name, &limit, &changed, &country, &runID))
	require.Equal(t, "Sjø og Land", name)
	require.Equal(t, "1500.25", limit)
	require.Equal(t, "2024-10-27 02:30:00", changed)
	require.Equal(t, "Norge", country)
	require.Equal(t, run.RunID, runID)
	require.Equal(t, 4, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")))
	require.Equal(t, 0, h.stages(), "committed stages are dropped")

	// A unique index on (company_no, associate_no) is the conflict target.
	require.Equal(t, 1, h.count(`SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'associate_nxtcron_key'
AND indexdef LIKE '%UNIQUE%(company_no, associate_no)%'`, h.schema))

	// The same slot again: nothing changes, not even the run id.
	before := h.contents("associate", "company_no, associate_no", true)
	again := h.run(associateFields)
	s2 := h.prepared(cfg, again)
	h.commit(s2, again, 1001, nil, []sinks.Row{associate(1, "Fjord Fisk AS"), associate(2, "Berg Bygg"), associate(3, "Sjø og Land")})
	require.Equal(t, before, h.contents("associate", "company_no, associate_no", true))

	// A changed row is updated, a new one inserted; only they carry the new run.
	third := h.run(associateFields)
	s3 := h.prepared(cfg, third)
	h.commit(s3, third, 1001, nil, []sinks.Row{associate(2, "Berg Bygg AS"), associate(4, "Ny Kunde")})
	require.Equal(t, 5, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")))
	require.Equal(t, 2, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")+` WHERE _nxtcron_run_id = $1::uuid`, third.RunID))
	require.Equal(t, 1, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")+` WHERE name = 'Berg Bygg AS' AND company_no = 1001`))
}

func TestUpsertKeepsTheLastRowOfAKeyReadTwice(t *testing.T) {
	h := newHarness(t)
	run := h.run(associateFields)
	s := h.prepared(h.config(), run)
	h.commit(s, run, 1001, nil, []sinks.Row{associate(1, "first"), associate(2, "two")}, []sinks.Row{associate(1, "second")})
	require.Equal(t, 1, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")+` WHERE associate_no = 1 AND name = 'second'`))
	require.Equal(t, 2, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")))
}

func TestAppend(t *testing.T) {
	t.Run("without key every run adds its rows", func(t *testing.T) {
		h := newHarness(t)
		cfg := h.config()
		cfg.Mode, cfg.Key = ModeAppend, nil
		for range 2 {
			run := h.run(associateFields)
			s := h.prepared(cfg, run)
			h.commit(s, run, 1001, nil, []sinks.Row{associate(1, "a"), associate(1, "a"), associate(2, "b")})
		}
		require.Equal(t, 6, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")))
		require.Equal(t, 2, h.count(`SELECT count(DISTINCT _nxtcron_run_id) FROM `+ident(h.schema, "associate")))
		require.Equal(t, 0, h.count(`SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'associate'`, h.schema))
	})
	t.Run("with key rows already present are left alone", func(t *testing.T) {
		h := newHarness(t)
		cfg := h.config()
		cfg.Mode = ModeAppend
		run := h.run(associateFields)
		h.commit(h.prepared(cfg, run), run, 1001, nil, []sinks.Row{associate(1, "first")})
		run2 := h.run(associateFields)
		h.commit(h.prepared(cfg, run2), run2, 1001, nil, []sinks.Row{associate(1, "changed"), associate(2, "new")})
		require.JSONEq(t, `[
			{"company_no":1001,"associate_no":1,"name":"first","credit_limit":1500.25,"active":true,"changed_timestamp":"2024-10-27T02:30:00","gln":7080000000001,"joinup_country":{"name":"Norge"},"tags":["a","b"]},
			{"company_no":1001,"associate_no":2,"name":"new","credit_limit":1500.25,"active":true,"changed_timestamp":"2024-10-27T02:30:00","gln":7080000000001,"joinup_country":{"name":"Norge"},"tags":["a","b"]}
		]`, h.contents("associate", "associate_no", false))
	})
}

func TestReplace(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.Mode = ModeReplace
	run := h.run(associateFields)
	s := h.prepared(cfg, run)
	h.commit(s, run, 1001, nil, []sinks.Row{associate(1, "a"), associate(2, "b"), associate(3, "c")})
	h.commit(s, run, 1002, nil, []sinks.Row{associate(9, "other")})

	// The next run of 1001 replaces its rows; 1002's stay.
	run2 := h.run(associateFields)
	h.commit(h.prepared(cfg, run2), run2, 1001, nil, []sinks.Row{associate(2, "b2"), associate(4, "d")})
	want := h.contents("associate", "company_no, associate_no", false)
	require.JSONEq(t, `[[1001,2,"b2"],[1001,4,"d"],[1002,9,"other"]]`, triples(t, want))
	require.Equal(t, 2, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")+` WHERE _nxtcron_run_id = $1::uuid`, run2.RunID))

	// The same slot again gives the same rows.
	run3 := h.run(associateFields)
	h.commit(h.prepared(cfg, run3), run3, 1001, nil, []sinks.Row{associate(2, "b2"), associate(4, "d")})
	require.Equal(t, want, h.contents("associate", "company_no, associate_no", false))

	// A company with no rows is emptied.
	run4 := h.run(associateFields)
	h.commit(h.prepared(cfg, run4), run4, 1002, nil)
	require.Equal(t, 0, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")+` WHERE company_no = 1002`))
}

// triples reduces table contents to [company, associate, name].
func triples(t *testing.T, contents string) string {
	t.Helper()
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(contents), &rows))
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = []any{r["company_no"], r["associate_no"], r["name"]}
	}
	b, err := json.Marshal(out)
	require.NoError(t, err)
	return string(b)
}

func TestJSONBColumns(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.Columns = ColumnsJSONB
	run := h.run(associateFields)
	s := h.prepared(cfg, run)
	row := associate(7, "Fjord Fisk AS")
	h.commit(s, run, 1001, nil, []sinks.Row{row})

	require.Equal(t, map[string]string{
		"company_no": "bigint", "associate_no": "bigint", "data": "jsonb",
		"_nxtcron_run_id": "uuid", "_nxtcron_loaded_at": "timestamp with time zone",
	}, h.columnTypes("associate"))
	var data string
	require.NoError(t, h.admin.QueryRow(context.Background(), `SELECT data::text FROM `+ident(h.schema, "associate")+
		` WHERE company_no = 1001 AND associate_no = 7`).Scan(&data))
	require.JSONEq(t, string(row), data)

	// Upsert by key in jsonb mode too.
	run2 := h.run(associateFields)
	h.commit(h.prepared(cfg, run2), run2, 1001, nil, []sinks.Row{associate(7, "Renamed")})
	require.Equal(t, 1, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")+` WHERE data->>'name' = 'Renamed'`))
	require.Equal(t, 1, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")))
}

func TestJSONBWithoutKeyNeedsNoTypes(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.Columns, cfg.Mode, cfg.Key = ColumnsJSONB, ModeAppend, nil
	s := h.open(cfg)
	require.False(t, s.NeedsTypes())
	run := h.run([]sinks.Field{{Name: "associateNo"}, {Name: "name"}})
	require.NoError(t, s.Prepare(context.Background(), run))
	h.commit(s, run, 1001, nil, []sinks.Row{associate(1, "a")})
	require.Equal(t, 1, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")+` WHERE data->>'name' = 'a'`))

	typed := h.open(h.config())
	require.True(t, typed.NeedsTypes())
	err := typed.Prepare(context.Background(), h.run([]sinks.Field{{Name: "associateNo"}, {Name: "name"}}))
	require.ErrorIs(t, err, sinks.ErrPermanent)
	require.ErrorContains(t, err, "field associateNo has no GraphQL type")
}

func TestWatermarkKeptWithTheRows(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	run := h.run(associateFields)
	s := h.prepared(h.config(), run)

	wm, err := s.Watermark(ctx, run.Job, 1001)
	require.NoError(t, err)
	require.Nil(t, wm, "no watermark before the first commit")

	first := &sinks.Watermark{Value: "2024-10-27T02:30:00.000", Keys: []byte(`{"1":"2024-10-27T02:30:00.000"}`)}
	h.commit(s, run, 1001, first, []sinks.Row{associate(1, "a")})
	got, err := s.Watermark(ctx, run.Job, 1001)
	require.NoError(t, err)
	require.Equal(t, first.Value, got.Value)
	require.JSONEq(t, string(first.Keys), string(got.Keys))

	// A watermark never moves back; rows still commit.
	run2 := h.run(associateFields)
	s2 := h.prepared(h.config(), run2)
	h.commit(s2, run2, 1001, &sinks.Watermark{Value: "2024-01-01T00:00:00.000"}, []sinks.Row{associate(2, "b")})
	got, err = s2.Watermark(ctx, run.Job, 1001)
	require.NoError(t, err)
	require.Equal(t, first.Value, got.Value)
	require.Equal(t, 2, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")))

	// An aborted company moves nothing.
	run3 := h.run(associateFields)
	s3 := h.prepared(h.config(), run3)
	w, err := s3.Open(ctx, run3, 1001)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{associate(3, "c")}))
	require.NoError(t, w.Abort(ctx))
	require.NoError(t, w.Abort(ctx), "abort twice is a no-op")
	got, err = s3.Watermark(ctx, run.Job, 1001)
	require.NoError(t, err)
	require.Equal(t, first.Value, got.Value)
	require.Equal(t, 2, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")))
	require.Equal(t, 0, h.stages())

	// Another job's watermark is read without touching fences.
	other, err := s3.Watermark(ctx, "other-job", 1001)
	require.NoError(t, err)
	require.Nil(t, other)
	require.Equal(t, 0, h.count(`SELECT count(*) FROM `+ident(h.schema, stateTable)+` WHERE job = 'other-job'`))
}

// Two attempts of one slot (a takeover): the later fence wins; the earlier
// attempt's commit is refused and leaves nothing behind.
func TestStaleAttemptRefusedByFence(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cfg := h.config()
	old := h.run(associateFields)
	newer := h.run(associateFields)
	sOld := h.prepared(cfg, old)
	sNew := h.prepared(cfg, newer)

	wOld, err := sOld.Open(ctx, old, 1001)
	require.NoError(t, err)
	require.NoError(t, wOld.Write(ctx, []sinks.Row{associate(1, "from the old attempt"), associate(2, "old")}))

	wm, err := sNew.Watermark(ctx, newer.Job, 1001) // raises the fence
	require.NoError(t, err)
	require.Nil(t, wm)
	wNew, err := sNew.Open(ctx, newer, 1001)
	require.NoError(t, err)
	require.NoError(t, wNew.Write(ctx, []sinks.Row{associate(1, "from the new attempt")}))
	require.NoError(t, wNew.Commit(ctx, &sinks.Watermark{Value: "2024-10-27T02:30:00.000"}))

	err = wOld.Commit(ctx, &sinks.Watermark{Value: "2024-10-28T00:00:00.000"})
	require.Error(t, err)
	require.ErrorIs(t, err, store.ErrFenced)
	require.ErrorIs(t, err, sinks.ErrPermanent)
	require.ErrorContains(t, err, "attempt with fence 101 is behind fence 102")
	require.NoError(t, wOld.Abort(ctx))

	require.Equal(t, `[[1001,1,"from the new attempt"]]`, triples(t, h.contents("associate", "associate_no", false)))
	require.Equal(t, 0, h.stages(), "the refused attempt's stage is dropped")
	got, err := sNew.Watermark(ctx, newer.Job, 1001)
	require.NoError(t, err)
	require.Equal(t, "2024-10-27T02:30:00.000", got.Value)

	// The old attempt can neither read the watermark nor open a company.
	_, err = sOld.Watermark(ctx, old.Job, 1001)
	require.ErrorIs(t, err, store.ErrFenced)
	_, err = sOld.Open(ctx, old, 1001)
	require.ErrorIs(t, err, store.ErrFenced)
	require.ErrorIs(t, err, sinks.ErrPermanent)
	// It still may open a company the newer attempt never reached.
	h.commit(sOld, old, 1002, nil, []sinks.Row{associate(5, "e")})
}

// A process killed mid-import leaves its stage and nothing else; the next
// attempt's Prepare drops the stage, and the attempt completes.
func TestCrashMidImport(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cfg := h.config()
	first := h.run(associateFields)
	h.commit(h.prepared(cfg, first), first, 1001, &sinks.Watermark{Value: "2024-10-01T00:00:00.000"}, []sinks.Row{associate(1, "kept")})
	before := h.contents("associate", "associate_no", true)

	crashed := h.run(associateFields)
	c, err := cfg.Open(ctx, sinks.Env{Log: h.log})
	require.NoError(t, err)
	cs := c.(*Sink)
	require.NoError(t, cs.Prepare(ctx, crashed))
	w, err := cs.Open(ctx, crashed, 1001)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{associate(1, "half-done"), associate(2, "half-done")}))
	// SIGKILL: no Commit, no Abort, no Close; the connections just go.
	cs.pool.Close()

	require.Equal(t, before, h.contents("associate", "associate_no", true), "the target is untouched")
	require.Equal(t, 1, h.stages())
	require.Equal(t, 1, h.count(`SELECT count(*) FROM `+ident(h.schema, stageTable)+` WHERE fence = $1`, crashed.Fence))

	next := h.run(associateFields)
	s := h.prepared(cfg, next)
	require.Equal(t, 0, h.stages(), "Prepare drops the orphaned stage")
	require.Equal(t, 0, h.count(`SELECT count(*) FROM `+ident(h.schema, stageTable)))
	require.NotEmpty(t, h.logs.FilterMessage("dropped orphaned stage table").All())

	wm, err := s.Watermark(ctx, next.Job, 1001)
	require.NoError(t, err)
	require.Equal(t, "2024-10-01T00:00:00.000", wm.Value, "the crashed attempt moved no watermark")
	h.commit(s, next, 1001, &sinks.Watermark{Value: "2024-10-02T00:00:00.000"}, []sinks.Row{associate(1, "done"), associate(2, "done")})
	require.Equal(t, `[[1001,1,"done"],[1001,2,"done"]]`, triples(t, h.contents("associate", "associate_no", false)))
}

// Prepare leaves the stages of newer attempts alone.
func TestSweepSparesNewerStages(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cfg := h.config()
	older := h.run(associateFields)
	newer := h.run(associateFields)
	sNew := h.prepared(cfg, newer)
	w, err := sNew.Open(ctx, newer, 1001)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{associate(1, "a")}))

	h.prepared(cfg, older) // a late attempt with a lower fence
	require.Equal(t, 1, h.stages())
	require.NoError(t, w.Commit(ctx, nil))
	require.Equal(t, 1, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")))
}

func TestStageIsUnlogged(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	run := h.run(associateFields)
	s := h.prepared(h.config(), run)
	w, err := s.Open(ctx, run, 1001)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{associate(1, "a")}))
	var persistence string
	require.NoError(t, h.admin.QueryRow(ctx, `SELECT c.relpersistence::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, h.schema, stageName(s.runHex, 1001)).Scan(&persistence))
	require.Equal(t, "u", persistence)
	require.Equal(t, 1, h.count(`SELECT count(*) FROM `+ident(h.schema, stageName(s.runHex, 1001))))

	// Close aborts the writers still open.
	require.NoError(t, s.Close())
	require.Equal(t, 0, h.stages())
	require.Equal(t, 0, h.count(`SELECT count(*) FROM `+ident(h.schema, "associate")))
}

func TestAddColumn(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	fields := associateFields[:2] // associateNo, name
	run := h.run(fields)
	h.commit(h.prepared(cfg, run), run, 1001, nil, []sinks.Row{sinks.Row(`{"associateNo":1,"name":"a"}`)})
	require.NotContains(t, h.columnTypes("associate"), "credit_limit")

	run2 := h.run(associateFields[:3])
	h.commit(h.prepared(cfg, run2), run2, 1001, nil, []sinks.Row{sinks.Row(`{"associateNo":2,"name":"b","creditLimit":10.5}`)})
	require.Equal(t, "numeric", h.columnTypes("associate")["credit_limit"])
	require.JSONEq(t, `[[1,"a",null],[2,"b",10.5]]`, h.query(`SELECT jsonb_agg(jsonb_build_array(associate_no, name, credit_limit) ORDER BY associate_no)::text FROM `+ident(h.schema, "associate")))
	require.NotEmpty(t, h.logs.FilterMessage("added columns").All())

	// A field no longer selected keeps its column; upserts leave it alone.
	run3 := h.run(fields)
	h.commit(h.prepared(cfg, run3), run3, 1001, nil, []sinks.Row{sinks.Row(`{"associateNo":2,"name":"b2"}`)})
	require.JSONEq(t, `[[1,"a",null],[2,"b2",10.5]]`, h.query(`SELECT jsonb_agg(jsonb_build_array(associate_no, name, credit_limit) ORDER BY associate_no)::text FROM `+ident(h.schema, "associate")))
}

func (h *harness) query(q string) string {
	h.t.Helper()
	var out string
	require.NoError(h.t, h.admin.QueryRow(context.Background(), q).Scan(&out))
	return out
}

func TestTypeChangeRefused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_, err := h.admin.Exec(ctx, `CREATE SCHEMA `+ident(h.schema))
	require.NoError(t, err)
	_, err = h.admin.Exec(ctx, `CREATE TABLE `+ident(h.schema, "associate")+` (company_no bigint NOT NULL, associate_no text NOT NULL, name text)`)
	require.NoError(t, err)

	s := h.open(h.config())
	err = s.Prepare(ctx, h.run(associateFields))
	require.Error(t, err)
	require.ErrorIs(t, err, sinks.ErrPermanent)
	require.ErrorContains(t, err, "column associate_no of "+h.schema+".associate is text, but field associateNo (Int) needs bigint")
	// All or nothing: no column was added, no state table made.
	require.Equal(t, map[string]string{"company_no": "bigint", "associate_no": "text", "name": "text"}, h.columnTypes("associate"))
	require.Empty(t, h.columnTypes(stateTable))
}

func TestKeyChangeRefused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	run := h.run(associateFields)
	h.commit(h.prepared(h.config(), run), run, 1001, nil, []sinks.Row{associate(1, "a")})
	cfg := h.config()
	cfg.Key = []string{"associateNo", "name"}
	err := h.open(cfg).Prepare(ctx, h.run(associateFields))
	require.ErrorIs(t, err, sinks.ErrPermanent)
	require.ErrorContains(t, err, "unique index associate_nxtcron_key is on (company_no, associate_no), the job's key needs (company_no, associate_no, name)")
}

func TestBadValueFailsTheCommitAndChangesNothing(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	run := h.run(associateFields)
	s := h.prepared(h.config(), run)
	h.commit(s, run, 1001, nil, []sinks.Row{associate(1, "a")})
	before := h.contents("associate", "associate_no", true)

	run2 := h.run(associateFields)
	s2 := h.prepared(h.config(), run2)
	w, err := s2.Open(ctx, run2, 1001)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{associate(1, "changed"), sinks.Row(`{"associateNo":"not a number","name":"x"}`)}))
	err = w.Commit(ctx, &sinks.Watermark{Value: "2030-01-01T00:00:00.000"})
	require.ErrorContains(t, err, "committing company 1001 to "+h.schema+".associate: merging the stage")
	require.Equal(t, before, h.contents("associate", "associate_no", true))
	require.Equal(t, 0, h.stages())
	wm, err := s2.Watermark(ctx, run2.Job, 1001)
	require.NoError(t, err)
	require.Nil(t, wm)
}

// Schema changes happen under pg_advisory_xact_lock: Prepare waits while
// another transaction holds the lock, and holds nothing once it returns.
func TestAdvisoryLockIsTransactional(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	key := lockKey(h.schema)
	classid, objid := int64(uint32(uint64(key)>>32)), int64(uint32(uint64(key)))
	locks := func(granted bool) int {
		return h.count(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = $1 AND objid::bigint = $2
AND objsubid = 1 AND granted = $3`, classid, objid, granted)
	}

	holder, err := h.admin.Begin(ctx)
	require.NoError(t, err)
	defer holder.Rollback(ctx) //nolint:errcheck
	_, err = holder.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
	require.NoError(t, err)

	s := h.open(h.config())
	done := make(chan error, 1)
	go func() { done <- s.Prepare(ctx, h.run(associateFields)) }()

	// Wait (bounded) until Prepare queues on the lock; it cannot finish first.
	waitUntil(t, func() bool { return locks(false) == 1 })
	select {
	case err := <-done:
		t.Fatalf("Prepare returned while the lock was held: %v", err)
	default:
	}
	require.Empty(t, h.columnTypes("associate"))
	require.NoError(t, holder.Commit(ctx))
	require.NoError(t, <-done)

	require.Equal(t, 0, locks(true)+locks(false), "no advisory lock outlives the transaction")
	require.NotEmpty(t, h.columnTypes("associate"))
}

func TestDSNNeverInErrorsOrLogs(t *testing.T) {
	const password = "Tr0ub4dor-and-3-horses"
	h := newHarness(t)
	ctx := context.Background()

	// A closed port: the connection fails.
	closed := "postgres://nxtcron:" + password + "@127.0.0.1:1/warehouse?sslmode=disable&connect_timeout=5"
	// A live server and a database that does not exist: the server refuses.
	u := strings.Replace(testDSN(), "/test?", "/nxtcron_no_such_db?", 1)
	missing := "host=127.0.0.1 port=5432 dbname=nxtcron_no_such_db user=postgres password=" + password + " sslmode=disable"
	if !strings.Contains(testDSN(), "127.0.0.1:5432") {
		missing = u
	}
	var texts []string
	for _, dsn := range []string{closed, missing} {
		cfg := h.config()
		cfg.DSN = secretOf(dsn)
		s := h.open(cfg)
		err := s.Prepare(ctx, h.run(associateFields))
		require.Error(t, err)
		texts = append(texts, err.Error())
		_, err = s.Watermark(ctx, "associates", 1001)
		require.Error(t, err)
		texts = append(texts, err.Error())
	}
	// An unparsable DSN is refused without quoting it.
	bad := "postgres://nxtcron:" + password + "@127.0.0.1:notaport/warehouse"
	cfg := h.config()
	cfg.DSN = secretOf(bad)
	errs := cfg.Validate(sinks.JobInfo{})
	require.Len(t, errs, 1)
	require.Equal(t, "dsn", errs[0].Key)
	texts = append(texts, errs[0].Message)
	_, err := cfg.Open(ctx, sinks.Env{Log: h.log})
	require.ErrorIs(t, err, sinks.ErrPermanent)
	texts = append(texts, err.Error())

	for _, e := range h.logs.All() {
		texts = append(texts, e.Message)
		for k, v := range e.ContextMap() {
			texts = append(texts, k+"="+toString(v))
		}
	}
	all := strings.Join(texts, "\n")
	require.Contains(t, all, "127.0.0.1") // the errors do say what failed
	assertNoSecret(t, all, password, closed, missing, bad)
}

func TestSafeScrubsSecrets(t *testing.T) {
	s := &Sink{secrets: []string{"postgres://u:pw-secret@h/db", "pw-secret"}}
	err := s.safe(sinks.Permanent(errors.New("connecting with postgres://u:pw-secret@h/db failed (password pw-secret)")))
	require.Equal(t, "connecting with <secret> failed (password <secret>)", err.Error())
	require.ErrorIs(t, err, sinks.ErrPermanent)
	plain := errors.New("nothing secret")
	require.Same(t, plain, s.safe(plain))
	require.NoError(t, s.safe(nil))
}
