-- +goose Up
-- The boot of the machine (Linux's /proc/sys/kernel/random/boot_id) whose
-- pairgate opened the database for writing last. A WAL left behind by a
-- process of the same boot lost nothing: its lazy commits sat in the page
-- cache, which outlives the process. Only across a reboot may they be gone,
-- and only then does Open move the events' seq on (db/store.go, seqGap).
CREATE TABLE writer_boot (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    boot_id TEXT NOT NULL
) STRICT;
