-- +goose Up
-- Fewer B-trees per write (issue #14): every index a write touches is one
-- more B-tree to update on the one writer, and one more page to write to
-- the WAL and fsync. These three served only the background job and the
-- paired list:
-- - pruning now walks events and requests in insertion order (seq, rowid),
--   oldest first, and stops at the first one still within retention;
-- - the paired list, ordered by approval, is sorted when it is read.
-- A request → approve cycle writes 13 pages instead of 17.
DROP INDEX events_by_time;
DROP INDEX nodes_by_approval;
DROP INDEX requests_decided_by_time;
