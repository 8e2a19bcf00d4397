-- Local users and the provider identities linked to them.
CREATE TABLE IF NOT EXISTS users (
    id             TEXT PRIMARY KEY,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    email          TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    profile        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS identities (
    provider      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX IF NOT EXISTS identities_user ON identities(user_id);

-- In-flight logins, keyed by a hash of `state`; each is taken once.
CREATE TABLE IF NOT EXISTS login_transactions (
    state_hash TEXT PRIMARY KEY,
    provider   TEXT NOT NULL,
    data       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS login_transactions_expiry ON login_transactions(expires_at);
