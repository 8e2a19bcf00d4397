-- The browser each login was started in (SHA-256 of its binding cookie), so that a browser's
-- logins in flight can be capped ([limits] logins_per_browser).
ALTER TABLE login_transactions ADD COLUMN binding TEXT;
CREATE INDEX IF NOT EXISTS login_transactions_binding ON login_transactions(binding, expires_at);
