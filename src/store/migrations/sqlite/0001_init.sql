-- Local users and the provider identities linked to them.
CREATE TABLE IF NOT EXISTS users (
    id             TEXT PRIMARY KEY,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    email          TEXT,
    email_verified INTEGER NOT NULL DEFAULT 0,
    profile        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS identities (
    provider      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX IF NOT EXISTS identities_user ON identities(user_id);

-- In-flight logins, keyed by a hash of `state`; each is taken once.
CREATE TABLE IF NOT EXISTS login_transactions (
    state_hash TEXT PRIMARY KEY,
    provider   TEXT NOT NULL,
    data       TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_transactions_expiry ON login_transactions(expires_at);
