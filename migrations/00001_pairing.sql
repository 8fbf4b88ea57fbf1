-- +goose Up
-- Times are INTEGER milliseconds since the epoch throughout.

-- Every pairing request ever made and still kept: pending ones, and decided
-- or expired ones until retention prunes them (so a retried approve can be
-- told what happened).
CREATE TABLE requests (
    request_id       TEXT PRIMARY KEY,
    node_id          TEXT NOT NULL,
    display_name     TEXT,
    platform         TEXT,
    version          TEXT,
    core_version     TEXT,
    ui_version       TEXT,
    device_family    TEXT,
    model_identifier TEXT,
    caps             TEXT,    -- JSON array; NULL when absent
    commands         TEXT,    -- JSON array; NULL when absent
    permissions      TEXT,    -- JSON object; NULL when absent
    remote_ip        TEXT,
    silent           INTEGER, -- NULL when absent, else 0 or 1
    is_repair        INTEGER NOT NULL,
    ts_ms            INTEGER NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_at_ms    INTEGER,
    decided_by       TEXT
) STRICT;

-- At most one pending request per node, enforced by the schema.
CREATE UNIQUE INDEX requests_one_pending_per_node ON requests (node_id) WHERE status = 'pending';
-- Listing and expiring pending requests by age.
CREATE INDEX requests_pending_by_ts ON requests (ts_ms) WHERE status = 'pending';
-- Pruning decided requests.
CREATE INDEX requests_decided_by_time ON requests (decided_at_ms) WHERE status <> 'pending';

-- Paired nodes. The token itself is never stored: token_hash (SHA-256) serves
-- verification, token_sealed (AES-256-GCM under pairing.key) serves export.
CREATE TABLE nodes (
    node_id              TEXT PRIMARY KEY,
    token_hash           BLOB NOT NULL,
    token_sealed         BLOB NOT NULL,
    display_name         TEXT,
    display_name_renamed INTEGER NOT NULL DEFAULT 0, -- set by an operator: survives repairs
    platform             TEXT,
    version              TEXT,
    core_version         TEXT,
    ui_version           TEXT,
    device_family        TEXT,
    model_identifier     TEXT,
    caps                 TEXT,
    commands             TEXT,
    permissions          TEXT,
    remote_ip            TEXT,
    created_at_ms        INTEGER NOT NULL,
    approved_at_ms       INTEGER NOT NULL,
    bins                 TEXT,
    last_connected_at_ms INTEGER
) STRICT;

CREATE INDEX nodes_by_approval ON nodes (approved_at_ms);

-- The outbox and audit log: one row per change, written in the change's own
-- transaction. AUTOINCREMENT keeps seq increasing even after pruning.
CREATE TABLE events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms   INTEGER NOT NULL,
    name    TEXT NOT NULL,
    payload TEXT NOT NULL, -- JSON
    actor   TEXT NOT NULL,
    source  TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX events_by_time ON events (ts_ms);
