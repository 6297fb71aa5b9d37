-- Runbook files as applied, by the sha256 of their bytes. `apply` keeps the text here
-- before it starts a run, so the run's Temporal input carries only the digest (the
-- UI opens on the plan, not on pages of YAML), and evidence still holds the text.
CREATE TABLE definitions (
    sha256     text PRIMARY KEY,
    text       text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now()
);
