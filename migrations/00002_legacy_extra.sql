-- +goose Up
-- Fields of imported legacy records that pairgate does not know, kept so
-- that export writes them back: a JSON array of [name, value] pairs, in
-- the order the file had them. NULL when there are none.
ALTER TABLE requests ADD COLUMN extra TEXT;
ALTER TABLE nodes ADD COLUMN extra TEXT;
