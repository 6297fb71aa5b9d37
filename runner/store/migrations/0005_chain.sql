-- Hash chains (docs/trust.md): each row of a run's step_events and audit_log is a
-- link, hash = sha256(prev_hash, the row's canonical content), `link` its place in
-- the order written. chain_heads holds each run's last link (written under a row
-- lock, so concurrent writers of one run chain one after another). A run's seal is
-- the worker's signature over the head and the run's final row.
ALTER TABLE step_events ADD COLUMN IF NOT EXISTS prev_hash text;
ALTER TABLE step_events ADD COLUMN IF NOT EXISTS hash text;
ALTER TABLE step_events ADD COLUMN IF NOT EXISTS link bigint;
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS prev_hash text;
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS hash text;
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS link bigint;
CREATE TABLE IF NOT EXISTS chain_heads (
    run_id text PRIMARY KEY REFERENCES runs (run_id),
    head   text NOT NULL,
    length bigint NOT NULL
);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS seal jsonb;
