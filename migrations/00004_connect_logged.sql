-- +goose Up
-- When a node's last node.connected audit row was written: connects are
-- logged at most once a minute per node (lastConnectedAtMs still follows
-- every connect). NULL until the first.
ALTER TABLE nodes ADD COLUMN connect_logged_at_ms INTEGER;
