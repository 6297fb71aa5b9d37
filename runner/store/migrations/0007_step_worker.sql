-- Which worker (pid@host, as Temporal lists it) ran each attempt. NULL in rows
-- written before: their hash covers no worker, so they verify as they did.
ALTER TABLE step_events ADD COLUMN IF NOT EXISTS worker text;
