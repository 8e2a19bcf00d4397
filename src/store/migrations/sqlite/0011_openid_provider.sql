-- The broker as an OpenID Provider toward apps ([clients.ID]).

-- Authorization requests waiting for the upstream login to finish, by the SHA-256 of their id.
CREATE TABLE IF NOT EXISTS op_requests (
    id_hash    TEXT PRIMARY KEY,
    request    TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS op_requests_expiry ON op_requests(expires_at);

-- Authorization codes, by SHA-256. A used code is kept (used_at, the grant it made) until it
-- expires, so that a replay revokes what the code issued.
CREATE TABLE IF NOT EXISTS op_codes (
    code_hash  TEXT PRIMARY KEY,
    grant_data TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    grant_id   TEXT
);
CREATE INDEX IF NOT EXISTS op_codes_expiry ON op_codes(expires_at);

-- What one client was granted from one broker session; its tokens die with it.
CREATE TABLE IF NOT EXISTS op_grants (
    grant_id   TEXT PRIMARY KEY,
    handle     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    grant_data TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    checked_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS op_grants_handle ON op_grants(handle);
CREATE INDEX IF NOT EXISTS op_grants_checked ON op_grants(checked_at);

-- A grant's refresh tokens, by SHA-256; rotated at every use, a replaced one remembers its
-- successor (sealed) for the grace window.
CREATE TABLE IF NOT EXISTS op_refresh_tokens (
    token_hash       TEXT PRIMARY KEY,
    grant_id         TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    superseded_at    INTEGER,
    successor_sealed TEXT
);
CREATE INDEX IF NOT EXISTS op_refresh_tokens_grant ON op_refresh_tokens(grant_id);

-- Back-channel logout tokens owed to clients whose grant's session ended.
CREATE TABLE IF NOT EXISTS op_logout_deliveries (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    handle    TEXT NOT NULL,
    attempts  INTEGER NOT NULL,
    next_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS op_logout_deliveries_due ON op_logout_deliveries(next_at);
