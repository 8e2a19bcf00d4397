//! The common end of every kind's login: claims → identity → local user → fresh session.

use serde_json::{Map, Value};
use tower_sessions::Session;

use super::super::AppState;
use crate::audit::{self, AuditEvent, Event};
use crate::client_info::ClientInfo;
use crate::error::AppResult;
use crate::identity::{self, UserView};
use crate::providers::{Provider, ProviderTokens};
use crate::session::{self, SessionRecord};

/// Verified claims → identity → local user → a fresh session (new id, no fixation), recorded with
/// the client it was signed in from and audited; beyond `max_per_user`, the oldest sessions end.
pub async fn finish_login(
    state: &AppState,
    web_session: &Session,
    provider: &Provider,
    claims: &Map<String, Value>,
    tokens: Option<&ProviderTokens>,
    client: &ClientInfo,
) -> AppResult<SessionRecord> {
    let now = state.clock.now();
    let identity = identity::from_claims(
        &provider.id,
        provider.kind.as_str(),
        claims,
        &provider.claims,
    )?;
    let link = state
        .store
        .link_identity(&identity, now, state.config.identity.link_by)
        .await?;
    let login = session::Login {
        user: UserView {
            id: link.user_id.clone(),
            identity,
        },
        provider: &provider.id,
        provider_sid: claims
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_string),
        tokens,
        client,
        acr: claims
            .get("acr")
            .and_then(Value::as_str)
            .filter(|a| a.len() <= 256)
            .map(str::to_string),
    };
    let (record, row) =
        session::start::after_login(state.session_parts(), web_session, login).await?;
    let at = now.unix_timestamp();
    if link.new_identity {
        let via = if link.new_user {
            "new_user"
        } else {
            "verified_email"
        };
        let event = AuditEvent::new(Event::IdentityLinked)
            .user(&row.user_id)
            .provider(&row.provider)
            .client(client)
            .detail("subject", row.subject.as_str())
            .detail("via", via);
        audit::record(&state.store, at, event).await;
    }
    let event = AuditEvent::of_session(Event::LoginSucceeded, &row).client(client);
    audit::record(&state.store, at, event).await;
    Ok(record)
}
