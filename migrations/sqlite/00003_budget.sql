-- The request budget shared between replicas (store.Budget): one token
-- bucket per key (a connection). Additive. Types map to migrations/postgres
-- as in 00001 (REAL -> double precision, TEXT times -> timestamptz).

-- +goose Up

CREATE TABLE request_budgets (
    key        TEXT    NOT NULL PRIMARY KEY,
    tokens     REAL    NOT NULL,              -- requests in the bucket at updated_at
    granted    INTEGER NOT NULL DEFAULT 0,    -- what the last take granted
    updated_at TEXT    NOT NULL               -- the database time of the last take
);
