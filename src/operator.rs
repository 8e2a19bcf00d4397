//! The command line's operator commands — `sessions list|revoke`, `users list|show|unlink` — which
//! open the configured store directly, as the broker does: no running broker is needed, and a
//! revoked session stops on every instance at its next request.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Subcommand};
use oidc_broker::audit::{self, AuditEvent, Event, RevokedBy};
use oidc_broker::config::{self, Config};
use oidc_broker::session::list::{SessionItem, live_sessions};
use oidc_broker::session::rfc3339;
use oidc_broker::session::store::Backends;
use oidc_broker::store::{IndexedSession, UnlinkError};
use time::OffsetDateTime;

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// A user's live sessions, newest first.
    List {
        #[arg(long, short)]
        config: PathBuf,
        /// The user's id (`usr_…`).
        #[arg(long)]
        user: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End every session of a user, or one session by its handle.
    #[command(group(ArgGroup::new("target").required(true).args(["user", "session"])))]
    Revoke {
        #[arg(long, short)]
        config: PathBuf,
        /// Every session of this user.
        #[arg(long)]
        user: Option<String>,
        /// The session with this handle (`ses_…`).
        #[arg(long)]
        session: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Every local user, oldest first.
    List {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// One user with their linked identities.
    Show {
        #[arg(long, short)]
        config: PathBuf,
        /// The user's id (`usr_…`).
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove one provider identity from a user (never the last one); its sessions end.
    Unlink {
        #[arg(long, short)]
        config: PathBuf,
        /// The user's id (`usr_…`).
        id: String,
        /// The provider id the identity belongs to.
        #[arg(long)]
        provider: String,
        /// The identity's subject at that provider.
        #[arg(long)]
        subject: String,
    },
}

pub enum Operation {
    Sessions(SessionsCommand),
    Users(UsersCommand),
}

impl Operation {
    fn config_path(&self) -> &Path {
        match self {
            Operation::Sessions(
                SessionsCommand::List { config, .. } | SessionsCommand::Revoke { config, .. },
            )
            | Operation::Users(
                UsersCommand::List { config, .. }
                | UsersCommand::Show { config, .. }
                | UsersCommand::Unlink { config, .. },
            ) => config,
        }
    }
}

/// A failed command: what to print, already worded for the operator.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

/// The configuration at `path` and a runtime to act on it; what went wrong is said on stderr.
pub fn config_and_runtime(
    path: &std::path::Path,
) -> Result<(config::Config, tokio::runtime::Runtime), ExitCode> {
    let cfg = config::load(path, std::env::vars()).map_err(|e| {
        eprint!("{}: {e}", path.display());
        ExitCode::FAILURE
    })?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("cannot start the runtime: {e}");
        ExitCode::FAILURE
    })?;
    Ok((cfg, runtime))
}

pub fn run(op: Operation) -> ExitCode {
    // Warnings (an audit event that could not be stored) go to stderr; the answer to stdout.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let (cfg, runtime) = match config_and_runtime(op.config_path()) {
        Ok(both) => both,
        Err(code) => return code,
    };
    match runtime.block_on(execute(op, &cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("oidc-broker: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The one place the command line opens the stores: the SQL store and the session store, the way
/// the broker opens them.
async fn open_backends(cfg: &Config) -> Result<Backends, Failure> {
    Backends::open(cfg)
        .await
        .map_err(|e| Failure(format!("cannot open the store: {e}")))
}

async fn execute(op: Operation, cfg: &Config) -> Result<(), Failure> {
    let backends = open_backends(cfg).await?;
    match op {
        Operation::Sessions(SessionsCommand::List { user, json, .. }) => {
            list_sessions(&backends, cfg, &user, json).await
        }
        Operation::Sessions(SessionsCommand::Revoke { user, session, .. }) => {
            revoke(&backends, user.as_deref(), session.as_deref()).await
        }
        Operation::Users(UsersCommand::List { json, .. }) => list_users(&backends, json).await,
        Operation::Users(UsersCommand::Show { id, json, .. }) => {
            show_user(&backends, &id, json).await
        }
        Operation::Users(UsersCommand::Unlink {
            id,
            provider,
            subject,
            ..
        }) => unlink(&backends, &id, &provider, &subject).await,
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

async fn require_user(
    backends: &Backends,
    id: &str,
) -> Result<oidc_broker::store::UserSummary, Failure> {
    backends.store.user(id).await?.ok_or_else(|| {
        Failure(format!(
            "there is no user {id} (see `oidc-broker users list`)"
        ))
    })
}

async fn list_sessions(
    backends: &Backends,
    cfg: &Config,
    user_id: &str,
    json: bool,
) -> Result<(), Failure> {
    let user = require_user(backends, user_id).await?;
    let sessions: Vec<SessionItem> = live_sessions(
        &backends.store,
        &backends.sessions,
        &cfg.session,
        now(),
        &user.id,
    )
    .await?
    .iter()
    .map(|s| s.item(&cfg.session, None))
    .collect();
    if json {
        let out = serde_json::json!({ "user": user, "sessions": sessions });
        println!("{out:#}");
        return Ok(());
    }
    if sessions.is_empty() {
        println!("{} has no live sessions.", user.id);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s.handle.clone(),
                s.device.clone(),
                s.ip.clone().unwrap_or_else(|| "-".into()),
                s.provider.clone(),
                s.created_at.clone(),
                s.last_seen_at.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "HANDLE",
            "DEVICE",
            "IP",
            "PROVIDER",
            "SIGNED IN",
            "LAST ACTIVE",
        ],
        &rows,
    );
    Ok(())
}

async fn end_and_audit(
    backends: &Backends,
    row: &IndexedSession,
    reason: Option<&str>,
) -> Result<(), Failure> {
    backends
        .end_session(row)
        .await
        .map_err(|e| Failure(format!("cannot end session {}: {e}", row.handle)))?;
    let mut event = AuditEvent::revoked(row, RevokedBy::Cli);
    if let Some(reason) = reason {
        event = event.detail("reason", reason);
    }
    audit::record(&backends.store, now().unix_timestamp(), event).await;
    Ok(())
}

async fn revoke(
    backends: &Backends,
    user: Option<&str>,
    session: Option<&str>,
) -> Result<(), Failure> {
    match (user, session) {
        (Some(user_id), _) => {
            let user = require_user(backends, user_id).await?;
            let rows = backends.store.sessions_of_user(&user.id).await?;
            for row in &rows {
                end_and_audit(backends, row, None).await?;
            }
            let handles: Vec<&str> = rows.iter().map(|r| r.handle.as_str()).collect();
            println!(
                "Revoked {} session(s) of {}{}{}",
                rows.len(),
                user.id,
                if handles.is_empty() { "" } else { ": " },
                handles.join(", ")
            );
        }
        (None, Some(handle)) => {
            let row = backends
                .store
                .indexed_session(handle)
                .await?
                .ok_or_else(|| {
                    Failure(format!(
                        "there is no session {handle} (see `oidc-broker sessions list --user ID`)"
                    ))
                })?;
            end_and_audit(backends, &row, None).await?;
            println!("Revoked session {} of {}", row.handle, row.user_id);
        }
        (None, None) => return Err(Failure("name --user ID or --session HANDLE".into())),
    }
    Ok(())
}

async fn list_users(backends: &Backends, json: bool) -> Result<(), Failure> {
    let users = backends.store.users().await?;
    if json {
        println!("{:#}", serde_json::json!({ "users": users }));
        return Ok(());
    }
    if users.is_empty() {
        println!("No users yet.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.id.clone(),
                email_cell(u.email.as_deref(), u.email_verified),
                u.name.clone().unwrap_or_else(|| "-".into()),
                u.identities.to_string(),
                rfc3339(u.created_at),
            ]
        })
        .collect();
    print_table(&["ID", "EMAIL", "NAME", "IDENTITIES", "CREATED"], &rows);
    Ok(())
}

fn email_cell(email: Option<&str>, verified: bool) -> String {
    match email {
        Some(e) if verified => format!("{} (verified)", printable(e)),
        Some(e) => format!("{} (unverified)", printable(e)),
        None => "-".into(),
    }
}

/// Text from providers (names, emails, subjects, user agents) as the terminal should show it:
/// control characters — escape sequences that could rewrite the screen or the clipboard — and
/// bidirectional overrides — which reorder what the operator reads — are shown escaped.
pub fn printable(s: &str) -> String {
    let hostile = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(hostile) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if hostile(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

async fn show_user(backends: &Backends, id: &str, json: bool) -> Result<(), Failure> {
    let user = require_user(backends, id).await?;
    let identities = backends.store.identities_of(&user.id).await?;
    if json {
        let out = serde_json::json!({ "user": user, "identities": identities });
        println!("{out:#}");
        return Ok(());
    }
    println!("{}", user.id);
    println!(
        "  email:    {}",
        email_cell(user.email.as_deref(), user.email_verified)
    );
    println!(
        "  name:     {}",
        printable(user.name.as_deref().unwrap_or("-"))
    );
    println!("  created:  {}", rfc3339(user.created_at));
    println!("  updated:  {}", rfc3339(user.updated_at));
    println!("  identities:");
    let rows: Vec<Vec<String>> = identities
        .iter()
        .map(|i| {
            vec![
                i.provider.clone(),
                i.subject.clone(),
                rfc3339(i.created_at),
                rfc3339(i.last_login_at),
            ]
        })
        .collect();
    print_table(&["PROVIDER", "SUBJECT", "LINKED", "LAST LOGIN"], &rows);
    Ok(())
}

async fn unlink(
    backends: &Backends,
    user_id: &str,
    provider: &str,
    subject: &str,
) -> Result<(), Failure> {
    match backends
        .store
        .unlink_identity(user_id, provider, subject, now())
        .await
    {
        Ok(()) => {}
        Err(UnlinkError::LastIdentity(user)) => {
            return Err(Failure(format!(
                "refusing to unlink {provider}/{subject}: it is the last identity of {user}, and without it nobody could sign in as that user"
            )));
        }
        Err(e @ (UnlinkError::NoUser(_) | UnlinkError::NotLinked { .. })) => {
            return Err(Failure(format!(
                "{e} (see `oidc-broker users show {user_id}`)"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let event = AuditEvent::new(Event::IdentityUnlinked)
        .user(user_id)
        .provider(provider)
        .detail("subject", subject)
        .detail("by", RevokedBy::Cli.as_str());
    audit::record(&backends.store, now().unix_timestamp(), event).await;
    // The identity no longer belongs to this user: neither do the sessions it signed in.
    let rows: Vec<IndexedSession> = backends
        .store
        .sessions_of(provider, None, Some(subject))
        .await?
        .into_iter()
        .filter(|r| r.user_id == user_id)
        .collect();
    for row in &rows {
        end_and_audit(backends, row, Some("identity_unlinked")).await?;
    }
    println!(
        "Unlinked {provider}/{subject} from {user_id}; {} of its session(s) ended.",
        rows.len()
    );
    Ok(())
}

/// Left-aligned columns, two spaces apart.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| printable(c)).collect())
        .collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
