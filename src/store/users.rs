//! Local users and the provider identities linked to them: linking at login, and what operators
//! read and change (`oidc-broker users …`).

use serde::Serialize;
use time::OffsetDateTime;

use super::Store;
use crate::config::LinkBy;
use crate::crypto;
use crate::identity::Identity;

/// What linking a login's identity did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOutcome {
    pub user_id: String,
    /// The identity was seen for the first time (a link was created).
    pub new_identity: bool,
    /// A new local user was made for it.
    pub new_user: bool,
}

/// A local user as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserSummary {
    pub id: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub identities: i64,
}

/// A provider identity linked to a user.
#[derive(Debug, Clone, Serialize)]
pub struct LinkedIdentity {
    pub provider: String,
    pub subject: String,
    pub created_at: i64,
    pub last_login_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnlinkError {
    #[error("there is no user {0}")]
    NoUser(String),
    #[error("{provider} subject {subject} is not linked to {user}")]
    NotLinked {
        user: String,
        provider: String,
        subject: String,
    },
    #[error(
        "{0} has no other identity: without this one nobody could sign in as that user, so it stays linked"
    )]
    LastIdentity(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

type UserRow = (String, Option<String>, i64, i64, i64, String, i64);

const USER_COLUMNS: &str = "u.id, u.email, CAST(CASE WHEN u.email_verified THEN 1 ELSE 0 END AS BIGINT), \
     u.created_at, u.updated_at, u.profile, (SELECT COUNT(*) FROM identities i WHERE i.user_id = u.id)";

fn summary(
    (id, email, verified, created_at, updated_at, profile, identities): UserRow,
) -> UserSummary {
    let name = serde_json::from_str::<Identity>(&profile)
        .ok()
        .and_then(|p| p.name);
    UserSummary {
        id,
        email,
        email_verified: verified != 0,
        name,
        created_at,
        updated_at,
        identities,
    }
}

impl Store {
    /// The local user for a provider identity: found by `(provider, subject)`; for a new identity,
    /// with `link_by = verified_email`, the user whose verified email it shares; else a new user.
    /// Concurrent first logins of one identity end with one user.
    pub async fn link_identity(
        &self,
        identity: &Identity,
        now: OffsetDateTime,
        link_by: LinkBy,
    ) -> Result<LinkOutcome, sqlx::Error> {
        let ts = now.unix_timestamp();
        let profile =
            serde_json::to_string(identity).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let mut tx = self.pool().begin().await?;
        // A write first: on SQLite it takes the write lock now (waiting out other writers), instead
        // of upgrading a read later, which fails at once when another login committed meanwhile.
        sqlx::query(
            "UPDATE identities SET last_login_at = $1 WHERE provider = $2 AND subject = $3",
        )
        .bind(ts)
        .bind(&identity.provider)
        .bind(&identity.subject)
        .execute(&mut *tx)
        .await?;
        let known: Option<(String,)> =
            sqlx::query_as("SELECT user_id FROM identities WHERE provider = $1 AND subject = $2")
                .bind(&identity.provider)
                .bind(&identity.subject)
                .fetch_optional(&mut *tx)
                .await?;
        let (target, new_user) = match known {
            Some((user_id,)) => (user_id, false),
            None => target_user(&mut tx, identity, link_by, &profile, ts).await?,
        };
        let inserted = sqlx::query(
            "INSERT INTO identities (provider, subject, user_id, created_at, last_login_at)
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM users WHERE id = $6)
             ON CONFLICT (provider, subject) DO NOTHING",
        )
        .bind(&identity.provider)
        .bind(&identity.subject)
        .bind(&target)
        .bind(ts)
        .bind(ts)
        .bind(&target)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let (user_id,): (String,) =
            sqlx::query_as("SELECT user_id FROM identities WHERE provider = $1 AND subject = $2")
                .bind(&identity.provider)
                .bind(&identity.subject)
                .fetch_one(&mut *tx)
                .await?;
        if new_user && user_id != target {
            // Another login of the same identity won the race: its user is the one.
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(&target)
                .execute(&mut *tx)
                .await?;
        }
        let created = new_user && user_id == target;
        if !created {
            // The profile follows the identity the person last signed in with.
            sqlx::query(
                "UPDATE users SET updated_at = $1, email = $2, email_verified = $3, profile = $4 WHERE id = $5",
            )
            .bind(ts)
            .bind(&identity.email)
            .bind(identity.email_verified)
            .bind(&profile)
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(LinkOutcome {
            user_id,
            new_identity: inserted,
            new_user: created,
        })
    }

    /// Every local user, oldest first.
    pub async fn users(&self) -> Result<Vec<UserSummary>, sqlx::Error> {
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.created_at, u.id"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(summary).collect())
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserSummary>, sqlx::Error> {
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(summary))
    }

    /// The identities linked to a user, oldest first.
    pub async fn identities_of(&self, user_id: &str) -> Result<Vec<LinkedIdentity>, sqlx::Error> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT provider, subject, created_at, last_login_at FROM identities
             WHERE user_id = $1 ORDER BY created_at, provider, subject",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(provider, subject, created_at, last_login_at)| LinkedIdentity {
                    provider,
                    subject,
                    created_at,
                    last_login_at,
                },
            )
            .collect())
    }

    /// Removes one identity from a user, never the last one. The next login of that identity
    /// makes (or, with linking, finds) a user again.
    pub async fn unlink_identity(
        &self,
        user_id: &str,
        provider: &str,
        subject: &str,
        now: OffsetDateTime,
    ) -> Result<(), UnlinkError> {
        let mut tx = self.pool().begin().await?;
        // Written first so that two unlinks of one user run one after the other (a row lock on
        // Postgres, the write lock on SQLite) and cannot both take "one of two".
        let found = sqlx::query("UPDATE users SET updated_at = $1 WHERE id = $2")
            .bind(now.unix_timestamp())
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if found == 0 {
            return Err(UnlinkError::NoUser(user_id.to_string()));
        }
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM identities WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        let linked: Option<(String,)> = sqlx::query_as(
            "SELECT user_id FROM identities WHERE provider = $1 AND subject = $2 AND user_id = $3",
        )
        .bind(provider)
        .bind(subject)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if linked.is_none() {
            return Err(UnlinkError::NotLinked {
                user: user_id.to_string(),
                provider: provider.to_string(),
                subject: subject.to_string(),
            });
        }
        if count <= 1 {
            return Err(UnlinkError::LastIdentity(user_id.to_string()));
        }
        sqlx::query("DELETE FROM identities WHERE provider = $1 AND subject = $2 AND user_id = $3")
            .bind(provider)
            .bind(subject)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The user a new identity joins: by verified email when `link_by` allows it, else a new user
/// (made only if the identity is still unknown; a concurrent login may win the race, see
/// `link_identity`). Returns the user id and whether it was made here.
async fn target_user(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    identity: &Identity,
    link_by: LinkBy,
    profile: &str,
    ts: i64,
) -> Result<(String, bool), sqlx::Error> {
    // Only a verified email links, and only to a user whose email is verified too.
    let by_email: Option<(String,)> =
        match (link_by, identity.email_verified, identity.email.as_deref()) {
            (LinkBy::VerifiedEmail, true, Some(email)) => {
                sqlx::query_as(
                    "SELECT id FROM users WHERE email_verified AND lower(email) = lower($1)
                     ORDER BY created_at, id LIMIT 1",
                )
                .bind(email)
                .fetch_optional(&mut **tx)
                .await?
            }
            _ => None,
        };
    Ok(match by_email {
        Some((user_id,)) => (user_id, false),
        None => {
            let candidate = format!("usr_{}", crypto::random_token(16));
            sqlx::query(
                "INSERT INTO users (id, created_at, updated_at, email, email_verified, profile)
                     SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS
                       (SELECT 1 FROM identities WHERE provider = $7 AND subject = $8)",
            )
            .bind(&candidate)
            .bind(ts)
            .bind(ts)
            .bind(&identity.email)
            .bind(identity.email_verified)
            .bind(profile)
            .bind(&identity.provider)
            .bind(&identity.subject)
            .execute(&mut **tx)
            .await?;
            (candidate, true)
        }
    })
}
