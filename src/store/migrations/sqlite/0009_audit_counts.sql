-- Failures of callers who are not signed in are one row per event, address and 10-minute window,
-- counted: `window_key` names that window (NULL for every other event), `count` how many times it
-- happened, `at` the first and `last_at` the last time.
ALTER TABLE audit_events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_events ADD COLUMN last_at INTEGER;
ALTER TABLE audit_events ADD COLUMN window_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS audit_events_window ON audit_events(window_key);
