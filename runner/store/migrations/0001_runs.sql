-- The long-term record of runs: Temporal keeps history only for its retention.
-- Every row is written idempotently: (run, seq) identifies an event, and seq is
-- numbered by the workflow itself, so a retried write or a replay never duplicates.

CREATE TABLE runs (
    run_id            text PRIMARY KEY,          -- Temporal's run id (one execution)
    workflow_id       text NOT NULL,             -- what operators type as RUN
    name              text NOT NULL,
    kind              text NOT NULL,
    plan_hash         text NOT NULL,
    definition_file   text,
    definition_sha256 text,
    definition_text   text,
    inputs            jsonb NOT NULL,
    status            text NOT NULL,
    started_by        text NOT NULL,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    outputs           jsonb,
    error             jsonb
);
CREATE INDEX runs_by_workflow ON runs (workflow_id, started_at DESC);
CREATE INDEX runs_by_start ON runs (started_at DESC);
CREATE INDEX runs_by_kind_status ON runs (kind, status, started_at DESC);

CREATE TABLE step_events (
    run_id      text NOT NULL REFERENCES runs (run_id),
    seq         integer NOT NULL,
    at          timestamptz NOT NULL,
    step        text NOT NULL,
    item        text,
    attempt     integer,
    status      text NOT NULL,               -- started, succeeded, failed, skipped, cancelled
    started_at  timestamptz,
    finished_at timestamptz,
    output      jsonb,
    error       jsonb,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX step_events_by_step ON step_events (run_id, step, seq);

CREATE TABLE audit_log (
    run_id  text NOT NULL REFERENCES runs (run_id),
    seq     integer NOT NULL,
    at      timestamptz NOT NULL,
    actor   text,
    action  text NOT NULL,                   -- run_started, gate_opened, gate_decided, ...
    detail  jsonb,
    PRIMARY KEY (run_id, seq)
);
