package db

// The statements on hot paths, prepared once per pool when a Store opens
// (see prepared.go). Others run unprepared.
const (
	qPendingOfNode   = `SELECT ` + requestColumns + ` FROM requests WHERE node_id = ? AND status = 'pending'`
	qCountLive       = `SELECT count(*) FROM requests WHERE status = 'pending' AND ts_ms >= ?`
	qNodeExists      = `SELECT EXISTS (SELECT 1 FROM nodes WHERE node_id = ?)`
	qDecide          = `UPDATE requests SET status = ?, decided_at_ms = ?, decided_by = ? WHERE request_id = ? AND status = 'pending'`
	qNodeForApproval = `SELECT created_at_ms, display_name, display_name_renamed, public_key FROM nodes WHERE node_id = ?`
	qVerify          = `SELECT ` + nodeColumns + `, token_hash FROM nodes WHERE node_id = ?`
	qNodeByID        = `SELECT ` + nodeColumns + ` FROM nodes WHERE node_id = ?`
	qRequestByID     = `SELECT ` + requestColumns + ` FROM requests WHERE request_id = ?`
	qInsertRequest   = `INSERT INTO requests (request_id, node_id, ` + metaColumns + `, silent, is_repair, ts_ms, public_key)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qUpsertNode = `INSERT INTO nodes (node_id, token_hash, token_sealed, display_name_renamed, ` + metaColumns + `,
				created_at_ms, approved_at_ms, public_key)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (node_id) DO UPDATE SET
				token_hash = excluded.token_hash, token_sealed = excluded.token_sealed,
				display_name_renamed = excluded.display_name_renamed,
				display_name = excluded.display_name, platform = excluded.platform, version = excluded.version,
				core_version = excluded.core_version, ui_version = excluded.ui_version,
				device_family = excluded.device_family, model_identifier = excluded.model_identifier,
				caps = excluded.caps, commands = excluded.commands, permissions = excluded.permissions,
				remote_ip = excluded.remote_ip, approved_at_ms = excluded.approved_at_ms,
				public_key = excluded.public_key,
				bins = NULL, last_connected_at_ms = NULL, connect_logged_at_ms = NULL, extra = NULL`
	qMarkConnected = `UPDATE nodes SET last_connected_at_ms = ? WHERE node_id = ?`
	// qLogConnect marks a connect as logged unless one was within ?2 ms.
	qLogConnect = `UPDATE nodes SET connect_logged_at_ms = ?1
			WHERE node_id = ?3 AND (connect_logged_at_ms IS NULL OR ?1 - connect_logged_at_ms >= ?2)`
	qInsertEvent      = `INSERT INTO events (ts_ms, name, payload, actor, source) VALUES (?, ?, ?, ?, ?)`
	qEventsAfter      = `SELECT seq, ts_ms, name, payload, actor, source FROM events WHERE seq > ? ORDER BY seq LIMIT ?`
	qLastSeq          = `SELECT max(seq) FROM events`
	qCountEventsAfter = `SELECT count(*) FROM events WHERE seq > ?`
	// qIssuedSeq is the highest event seq ever handed out (IssuedSeq).
	qIssuedSeq = `SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), coalesce((SELECT max(seq) FROM events), 0))`
)

var writeStatements = []string{qPendingOfNode, qCountLive, qNodeExists, qDecide, qNodeForApproval, qRequestByID, qInsertRequest, qUpsertNode, qInsertEvent, qMarkConnected, qLogConnect}

var readStatements = []string{qCountLive, qVerify, qNodeByID, qRequestByID, qEventsAfter, qLastSeq, qCountEventsAfter}
