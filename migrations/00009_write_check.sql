-- +goose Up
-- /readyz's write check (db.Store.WriteFailure): after a write failed for
-- its disk, one row of 64 KiB is written here and removed again, in two
-- commits. It takes new pages as a pairing write does, so it fails where
-- they fail (a full disk): a one-page write that reuses the WAL's space
-- passed while every real write failed. Empty between checks.
CREATE TABLE write_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    filler BLOB NOT NULL
) STRICT;
