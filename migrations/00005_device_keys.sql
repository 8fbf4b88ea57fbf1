-- +goose Up
-- Connect-time pairing of node devices: the Ed25519 public key
-- (base64url, raw 32 bytes) a node's connect was signed with, kept on its
-- request and pinned on the paired node at approval. Only a connect
-- signed by the pinned key is handed the node's token in hello-ok. NULL
-- for requests made by node.pair.request and nodes paired through them.
ALTER TABLE requests ADD COLUMN public_key TEXT;
ALTER TABLE nodes ADD COLUMN public_key TEXT;
