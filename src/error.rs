//! One error type for every handler. Client errors carry a stable code and a human message;
//! internal causes are logged with a correlation id and never reach the response.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    /// A client went over a `[limits]` rate.
    TooManyRequests,
    /// The identity provider failed or answered something we refuse.
    Provider,
    /// The store or a provider is unreachable.
    Unavailable,
    Internal,
}

impl ErrorKind {
    fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Provider => StatusCode::BAD_GATEWAY,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Debug)]
pub struct AppError {
    pub kind: ErrorKind,
    /// Stable, machine-readable (`invalid_state`, `not_authenticated`, …).
    pub code: &'static str,
    /// Safe to show to the person: never a token, a code or a secret.
    pub message: String,
    /// Logged with the correlation id; never sent.
    pub cause: Option<String>,
    pub login_url: Option<String>,
    /// Seconds until a refused client may try again (`Retry-After`, RFC 9110 §10.2.3).
    pub retry_after: Option<u64>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        AppError {
            kind,
            code,
            message: message.into(),
            cause: None,
            login_url: None,
            retry_after: None,
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }
    pub fn unauthorized(login_url: String) -> Self {
        let mut e = Self::new(
            ErrorKind::Unauthorized,
            "not_authenticated",
            "Your session has ended, or you have not signed in yet. Sign in to continue.",
        );
        e.login_url = Some(login_url);
        e
    }
    /// 429: the client went over a `[limits]` rate; it may try again after `retry_after` seconds.
    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = Self::new(
            ErrorKind::TooManyRequests,
            "rate_limited",
            format!("Too many requests from here. Try again in {retry_after} seconds."),
        );
        e.retry_after = Some(retry_after);
        e
    }
    pub fn provider(
        code: &'static str,
        message: impl Into<String>,
        cause: impl std::fmt::Display,
    ) -> Self {
        Self::new(ErrorKind::Provider, code, message).with_cause(cause)
    }
    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorKind::Unavailable,
            "unavailable",
            format!("The {what} is unavailable right now. Try again shortly."),
        )
        .with_cause(cause)
    }
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorKind::Internal,
            "internal_error",
            "Something went wrong on our side.",
        )
        .with_cause(cause)
    }
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                crate::metrics::store_error("sql");
                AppError::unavailable("session store", e)
            }
            other => {
                crate::metrics::store_error("sql");
                AppError::internal(other)
            }
        }
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        crate::metrics::store_error("sessions");
        AppError::unavailable("session store", e)
    }
}

impl From<crate::session::SessionError> for AppError {
    fn from(e: crate::session::SessionError) -> Self {
        use crate::session::SessionError;
        match e {
            SessionError::Unavailable(_) => {
                crate::metrics::store_error("sessions");
                AppError::unavailable("session store", e)
            }
            SessionError::Sql(e) => e.into(),
            SessionError::Internal(_) => AppError::internal(e),
        }
    }
}

impl From<crate::limits::Refused> for AppError {
    fn from(r: crate::limits::Refused) -> Self {
        AppError::too_many_requests(r.retry_after_secs())
    }
}

/// What an error response carries for the HTML rendering layer ([`crate::routes::render_errors`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: &'static str,
    /// The same as `message`, under the name OAuth 2.0 clients read (RFC 6749 §5.2).
    pub error_description: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_url: Option<String>,
    pub correlation_id: String,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        // The request's own id (see `request_id`), so the answer and the logs name it alike.
        let correlation_id =
            crate::request_id::current().unwrap_or_else(|| crate::crypto::random_hex(8));
        let status = self.status();
        match (&self.cause, status.is_server_error()) {
            (Some(cause), true) => {
                tracing::error!(%correlation_id, code = self.code, %status, cause = %cause, "request failed")
            }
            (Some(cause), false) => {
                tracing::info!(%correlation_id, code = self.code, %status, cause = %cause, "request refused")
            }
            // A flood of refusals must not become a flood of log lines: the limiter counts them.
            (None, _) if self.kind == ErrorKind::TooManyRequests => {
                tracing::debug!(%correlation_id, code = self.code, %status, "request refused")
            }
            (None, _) => {
                tracing::info!(%correlation_id, code = self.code, %status, "request refused")
            }
        }
        let body = ErrorBody {
            error: self.code,
            error_description: self.message.clone(),
            message: self.message,
            login_url: self.login_url,
            correlation_id,
        };
        let mut res = (status, Json(body.clone())).into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if body.error == "invalid_token" {
            // RFC 6750 §3.1.
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        } else if body.error == "invalid_client" && status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2.
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oidc-broker\""),
            );
        }
        res.extensions_mut().insert(body);
        res
    }
}

// Identity providers (`providers/`) and the normalised identity (`identity.rs`).

impl From<crate::providers::ProviderError> for AppError {
    fn from(e: crate::providers::ProviderError) -> Self {
        use crate::providers::ProviderErrorKind as K;
        let kind = match e.kind {
            K::BadRequest => ErrorKind::BadRequest,
            K::Unauthorized => ErrorKind::Unauthorized,
            K::Upstream => ErrorKind::Provider,
            K::Unavailable => ErrorKind::Unavailable,
            K::Internal => ErrorKind::Internal,
        };
        let mut out = AppError::new(kind, e.code, e.message);
        out.cause = e.cause;
        out
    }
}

impl From<crate::identity::IdentityError> for AppError {
    fn from(e: crate::identity::IdentityError) -> Self {
        let cause = format!("claim {}: {}", e.claim, e.what);
        AppError::provider("invalid_claims", e.to_string(), cause)
    }
}

// The OpenID Provider side (`op/`).

impl From<crate::op::OpError> for AppError {
    fn from(e: crate::op::OpError) -> Self {
        use crate::op::OpError;
        match e {
            OpError::Page { code, message } => AppError::bad_request(code, message),
            OpError::OAuth {
                error,
                description,
                unauthorized,
            } => {
                let kind = if unauthorized {
                    ErrorKind::Unauthorized
                } else {
                    ErrorKind::BadRequest
                };
                AppError::new(kind, error, description)
            }
            OpError::Session(e) => e.into(),
            OpError::Keys(e) => AppError::unavailable("key store", e),
        }
    }
}
