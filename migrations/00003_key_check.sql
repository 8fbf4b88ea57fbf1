-- +goose Up
-- Which pairing.key this database belongs to: a known value sealed under
-- it. At open, a key that cannot open it is not this database's key (one
-- row at most).
CREATE TABLE key_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed BLOB NOT NULL
) STRICT;
