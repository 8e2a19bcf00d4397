//! The audit log's table: written by [`crate::audit::record`], read by `GET /admin/audit`, swept
//! after `[audit] retention`.

use serde::Serialize;

use super::Store;

/// An audit event to write, as the table holds it (built by [`crate::audit`]).
#[derive(Debug, Clone, Copy)]
pub struct NewAuditRow<'a> {
    pub at: i64,
    pub event: &'a str,
    pub user_id: Option<&'a str>,
    pub session: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// A JSON object.
    pub detail: &'a str,
}

/// An audit event as stored.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub user_id: Option<String>,
    pub session: Option<String>,
    pub provider: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// A JSON object.
    pub detail: String,
    /// How many times it happened: more than 1 only for aggregated failures.
    pub count: i64,
    /// An aggregated failure: the last time it happened in its window (`at` is the first).
    pub last_at: Option<i64>,
}

type Row = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<i64>,
);

const COLUMNS: &str =
    "id, at, event, user_id, handle, provider, ip, user_agent, detail, count, last_at";

impl Store {
    pub async fn insert_audit(&self, row: NewAuditRow<'_>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_events (at, event, user_id, handle, provider, ip, user_agent, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(row.at)
        .bind(row.event)
        .bind(row.user_id)
        .bind(row.session)
        .bind(row.provider)
        .bind(row.ip)
        .bind(row.user_agent)
        .bind(row.detail)
        .execute(self.pool())
        .await
        .map(|_| ())
    }

    /// Counts an aggregated event in the row of its window (`window_key`), made by the first one;
    /// returns the count so far. One statement, so instances sharing the store count together.
    pub async fn count_audit(
        &self,
        row: NewAuditRow<'_>,
        window_key: &str,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO audit_events (at, event, user_id, handle, provider, ip, user_agent, detail, count, last_at, window_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $1, $9)
             ON CONFLICT (window_key) DO UPDATE SET count = audit_events.count + 1, last_at = excluded.last_at
             RETURNING count",
        )
        .bind(row.at)
        .bind(row.event)
        .bind(row.user_id)
        .bind(row.session)
        .bind(row.provider)
        .bind(row.ip)
        .bind(row.user_agent)
        .bind(row.detail)
        .bind(window_key)
        .fetch_one(self.pool())
        .await
    }

    /// The newest events first, of one user or of everyone.
    pub async fn audit_events(
        &self,
        user_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        let rows: Vec<Row> = match user_id {
            Some(user) => {
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM audit_events WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2"
                ))
                .bind(user)
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM audit_events ORDER BY at DESC, id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    at,
                    event,
                    user_id,
                    session,
                    provider,
                    ip,
                    user_agent,
                    detail,
                    count,
                    last_at,
                )| AuditRow {
                    id,
                    at,
                    event,
                    user_id,
                    session,
                    provider,
                    ip,
                    user_agent,
                    detail,
                    count,
                    last_at,
                },
            )
            .collect())
    }

    /// Removes the events that happened before `before`.
    pub async fn sweep_audit(&self, before: i64) -> Result<u64, sqlx::Error> {
        sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before)
            .execute(self.pool())
            .await
            .map(|r| r.rows_affected())
    }
}
