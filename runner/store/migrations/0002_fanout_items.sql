-- Fan-out items: each batch of a fan-out (a child workflow) numbers the rows of its
-- items itself, so (run, batch, seq) identifies an event; the run's own rows keep
-- batch = ''. Ordering a run's events by (at, batch, seq) interleaves the items
-- with the run's events and keeps the run's own order.
ALTER TABLE step_events ADD COLUMN batch text NOT NULL DEFAULT '';
ALTER TABLE step_events DROP CONSTRAINT step_events_pkey;
ALTER TABLE step_events ADD PRIMARY KEY (run_id, batch, seq);
CREATE INDEX step_events_by_item ON step_events (run_id, step, item) WHERE item IS NOT NULL;
