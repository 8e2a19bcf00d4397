-- Token mode: the one-time code a login hands to the app, traded once for broker tokens.
CREATE TABLE IF NOT EXISTS login_codes (
    code_hash  TEXT PRIMARY KEY,
    handle     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS login_codes_expiry ON login_codes(expires_at);

-- Broker refresh tokens, stored as SHA-256; each is bound to one local session. With rotation a used
-- token is kept (superseded_at set) to recognise a replay.
CREATE TABLE IF NOT EXISTS broker_refresh_tokens (
    token_hash    TEXT PRIMARY KEY,
    handle        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    superseded_at BIGINT
);
CREATE INDEX IF NOT EXISTS broker_refresh_tokens_handle ON broker_refresh_tokens(handle);
CREATE INDEX IF NOT EXISTS broker_refresh_tokens_expiry ON broker_refresh_tokens(expires_at);

-- The keys that sign broker JWTs, shared by every instance. The private key is sealed under the
-- [keys] ring; the public JWK is published until every token it signed has expired.
CREATE TABLE IF NOT EXISTS signing_keys (
    kid            TEXT PRIMARY KEY,
    sealed_private TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
