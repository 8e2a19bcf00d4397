//! Where each session was signed in from, kept in its session-index row.

use std::collections::HashMap;

use serde::Serialize;

use super::Store;

/// The client a session was signed in from.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SessionDevice {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub device: Option<String>,
}

/// `(handle, ip, user_agent, device)`.
type DeviceRow = (String, Option<String>, Option<String>, Option<String>);

impl Store {
    pub async fn record_session_device(
        &self,
        handle: &str,
        device: &SessionDevice,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE session_index SET ip = $1, user_agent = $2, device = $3 WHERE handle = $4",
        )
        .bind(&device.ip)
        .bind(&device.user_agent)
        .bind(&device.device)
        .bind(handle)
        .execute(self.pool())
        .await
        .map(|_| ())
    }

    /// The devices of a user's indexed sessions, by handle.
    pub async fn session_devices(
        &self,
        user_id: &str,
    ) -> Result<HashMap<String, SessionDevice>, sqlx::Error> {
        let rows: Vec<DeviceRow> = sqlx::query_as(
            "SELECT handle, ip, user_agent, device FROM session_index WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(handle, ip, user_agent, device)| {
                (
                    handle,
                    SessionDevice {
                        ip,
                        user_agent,
                        device,
                    },
                )
            })
            .collect())
    }
}
