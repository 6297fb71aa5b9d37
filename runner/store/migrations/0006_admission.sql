-- What a run's start proved, kept for good (runner/steps/admission.py).
-- A signed start is used once, ever: its nonce, with the one execution it started.
CREATE TABLE IF NOT EXISTS spent_proofs (
    nonce           text PRIMARY KEY,
    workflow_id     text NOT NULL,
    temporal_run_id text NOT NULL,
    spent_at        timestamptz NOT NULL DEFAULT now()
);
-- A run is redriven by one run: the first to claim it.
CREATE TABLE IF NOT EXISTS redrive_claims (
    redrive_of      text PRIMARY KEY,
    workflow_id     text NOT NULL,
    temporal_run_id text NOT NULL,
    claimed_at      timestamptz NOT NULL DEFAULT now()
);
