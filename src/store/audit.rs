//! The audit log's table: written by [`crate::audit::record`], read by `GET /admin/audit`, swept
//! after `[audit] retention`.

use serde::Serialize;

use super::Store;
use crate::audit::AuditEvent;

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
);

const COLUMNS: &str = "id, at, event, user_id, handle, provider, ip, user_agent, detail";

impl Store {
    pub async fn insert_audit(
        &self,
        at: i64,
        event: &AuditEvent,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_events (at, event, user_id, handle, provider, ip, user_agent, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(at)
        .bind(event.event.as_str())
        .bind(&event.user_id)
        .bind(&event.session)
        .bind(&event.provider)
        .bind(&event.ip)
        .bind(&event.user_agent)
        .bind(detail)
        .execute(self.pool())
        .await
        .map(|_| ())
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
                |(id, at, event, user_id, session, provider, ip, user_agent, detail)| AuditRow {
                    id,
                    at,
                    event,
                    user_id,
                    session,
                    provider,
                    ip,
                    user_agent,
                    detail,
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
