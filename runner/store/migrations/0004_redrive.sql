-- A redrive (`qlrf-run redrive RUN`) is a new run that continues a failed one: it
-- names the run it continues, so `history` and evidence can follow the chain.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS redrive_of text;
CREATE INDEX IF NOT EXISTS runs_by_redrive ON runs (redrive_of);
