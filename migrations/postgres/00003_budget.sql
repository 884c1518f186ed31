-- The request budget shared between replicas (store.Budget):
-- migrations/sqlite/00003_budget.sql with Postgres types. Additive.

-- +goose Up

CREATE TABLE request_budgets (
    key        text             NOT NULL PRIMARY KEY,
    tokens     double precision NOT NULL,             -- requests in the bucket at updated_at
    granted    integer          NOT NULL DEFAULT 0,   -- what the last take granted
    updated_at timestamptz      NOT NULL              -- the database time of the last take
);
