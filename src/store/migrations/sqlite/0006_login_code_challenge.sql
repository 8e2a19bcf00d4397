-- Token mode: a login started with a PKCE code_challenge (RFC 7636, S256) binds its one-time code
-- to the app that holds the verifier.
ALTER TABLE login_codes ADD COLUMN code_challenge TEXT;
