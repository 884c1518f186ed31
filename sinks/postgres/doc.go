// Package postgres is the Postgres sink: rows go to a table in a target
// database, exactly once per (attempt, company), with the incremental
// watermark kept beside them.
//
// Per attempt, Prepare creates or extends the target table (and the sink's
// two bookkeeping tables, nxtcron_sink_state and nxtcron_sink_stage, in the
// target's schema) in one transaction under a transaction-level advisory
// lock, then drops the stage tables that older attempts of the job left
// behind. Per company, the attempt first raises the company's fence in
// nxtcron_sink_state to its fencing token (failing, permanently, when a newer
// attempt has raised it further); pages are then COPYed into an UNLOGGED
// stage table of their own; Commit runs one short transaction that checks
// the fence again under a row lock, merges the stage into the target
// (upsert, append or replace), moves the watermark and drops the stage.
// Either all of that happens or none of it.
//
// Columns are the snake_case of the selected GraphQL fields with types from
// introspection (columns: typed), or the key columns and one jsonb column
// holding each row (columns: jsonb); every table also has company_no,
// _nxtcron_run_id and _nxtcron_loaded_at. The stage holds the rows as jsonb;
// the merge converts them with SQL casts, so a value the column type cannot
// take fails the commit and changes nothing.
package postgres
