-- Where each session was signed in from: the client's address, its user agent and a readable label.
ALTER TABLE session_index ADD COLUMN IF NOT EXISTS ip TEXT;
ALTER TABLE session_index ADD COLUMN IF NOT EXISTS user_agent TEXT;
ALTER TABLE session_index ADD COLUMN IF NOT EXISTS device TEXT;

-- Linking a new identity by verified email looks users up by email, whatever its case.
CREATE INDEX IF NOT EXISTS users_email ON users(lower(email));

-- Lifecycle events (logins, refreshes, logouts, revocations, links), kept for [audit] retention.
-- `detail` is a JSON object; no event ever holds a token.
CREATE TABLE IF NOT EXISTS audit_events (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    event      TEXT NOT NULL,
    user_id    TEXT,
    handle     TEXT,
    provider   TEXT,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_user ON audit_events(user_id, at);
CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events(at);
