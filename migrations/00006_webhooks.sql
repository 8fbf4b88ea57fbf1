-- +goose Up
-- One row per webhook endpoint: where its delivery stands in the events
-- table. id is derived from the endpoint's URL (config.Webhook.ID).
CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY,
    cursor           INTEGER NOT NULL,           -- seq of the last event delivered (or filtered out)
    generation       INTEGER NOT NULL DEFAULT 0, -- bumped by redeliver, so a delivery in flight cannot undo it
    attempts         INTEGER NOT NULL DEFAULT 0, -- failed attempts at the event after cursor
    failing_since_ms INTEGER,                    -- first failure of that event
    next_attempt_ms  INTEGER,
    last_error       TEXT,
    dead_at_ms       INTEGER                     -- set when retries ran out: delivery stops until redeliver
) STRICT;
