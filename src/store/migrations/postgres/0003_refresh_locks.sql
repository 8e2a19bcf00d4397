-- Single-flight refresh across instances: one holder per session until `until`.
CREATE TABLE IF NOT EXISTS refresh_locks (
    handle TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
