-- Each notification sent once (runner/notify/deliver.py): the delivery's idempotency
-- key (run, event, gate, round, channel) is claimed before anything is sent, and
-- marked sent or failed after. A claim left `sending` is one a worker stopped in the
-- middle of: it is never sent again, since the far end may have it already.
CREATE TABLE IF NOT EXISTS notify_deliveries (
    key          text PRIMARY KEY,
    workflow_id  text NOT NULL,
    channel      text NOT NULL,
    event        text NOT NULL,
    status       text NOT NULL,
    attempt      integer NOT NULL,
    answer       text,
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
