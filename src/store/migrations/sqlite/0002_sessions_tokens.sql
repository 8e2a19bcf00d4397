-- One row per local session: how to find it (by handle, user, provider sid or subject) and the
-- provider tokens it holds, sealed (AES-256-GCM, bound to the handle).
CREATE TABLE IF NOT EXISTS session_index (
    handle            TEXT PRIMARY KEY,
    session_id        TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    provider          TEXT NOT NULL,
    subject           TEXT NOT NULL,
    provider_sid      TEXT,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    tokens            TEXT,
    access_expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS session_index_user ON session_index(user_id);
CREATE INDEX IF NOT EXISTS session_index_sid ON session_index(provider, provider_sid);
CREATE INDEX IF NOT EXISTS session_index_subject ON session_index(provider, subject);
CREATE INDEX IF NOT EXISTS session_index_expiry ON session_index(expires_at);

-- Back-channel logout tokens already used (OpenID Connect Back-Channel Logout 1.0 §2.6: jti replay).
CREATE TABLE IF NOT EXISTS seen_logout_tokens (
    provider   TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (provider, jti)
);

-- Revocations the provider did not accept yet; retried with backoff. The token stays sealed.
CREATE TABLE IF NOT EXISTS pending_revocations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    context     TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_try_at INTEGER NOT NULL,
    last_error  TEXT
);
