-- Sessions are found by SHA-256 of their id (the cookie value), never by the id itself, so a dump
-- of the store holds no working cookie. Rows written before are moved to their keys at start by
-- the broker (src/store/hashed_ids.rs: SQLite has no SHA-256 function), in one transaction that
-- also records the move in `store_upgrades`.
ALTER TABLE session_index RENAME COLUMN session_id TO session_key;

-- One-time data moves done by the broker at start, each recorded once complete.
CREATE TABLE IF NOT EXISTS store_upgrades (
    name    TEXT PRIMARY KEY,
    done_at INTEGER NOT NULL
);
