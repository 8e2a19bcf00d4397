//! What goes wrong with an identity provider, carrying what an answer to the browser needs: a
//! stable code, a message safe to show, how serious it is, and a cause that is logged but never
//! sent. `error.rs` turns it into the HTTP answer.

use std::fmt::Display;

use crate::http_client::HttpError;

/// How serious a [`ProviderError`] is, which decides the answer's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderErrorKind {
    /// The request, or what the provider sent back through the browser, is refused (400).
    BadRequest,
    /// The person's credentials, or a token the caller handed in, are refused (401).
    Unauthorized,
    /// The provider failed or answered something the broker refuses (502).
    Upstream,
    /// The provider cannot be reached now; trying again may work (503).
    Unavailable,
    /// The broker itself failed (500).
    Internal,
}

/// A sign-in, token or logout step with a provider that failed.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    /// Stable, machine-readable (`invalid_id_token`, `provider_error`, …).
    pub code: &'static str,
    /// Safe to show to the person: never a token, a code or a secret.
    pub message: String,
    /// Logged, never sent.
    pub cause: Option<String>,
}

impl ProviderError {
    fn new(kind: ProviderErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            code,
            message: message.into(),
            cause: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ProviderErrorKind::BadRequest, code, message)
    }

    pub fn unauthorized(
        code: &'static str,
        message: impl Into<String>,
        cause: impl Display,
    ) -> Self {
        Self::new(ProviderErrorKind::Unauthorized, code, message).with_cause(cause)
    }

    pub fn upstream(code: &'static str, message: impl Into<String>, cause: impl Display) -> Self {
        Self::new(ProviderErrorKind::Upstream, code, message).with_cause(cause)
    }

    /// The provider `provider_id` cannot be reached now.
    pub fn unavailable(provider_id: &str, cause: impl Display) -> Self {
        Self::new(
            ProviderErrorKind::Unavailable,
            "unavailable",
            format!(
                "The identity provider `{provider_id}` is unavailable right now. Try again shortly."
            ),
        )
        .with_cause(cause)
    }

    pub fn internal(cause: impl Display) -> Self {
        Self::new(
            ProviderErrorKind::Internal,
            "internal_error",
            "Something went wrong on our side.",
        )
        .with_cause(cause)
    }

    fn with_cause(mut self, cause: impl Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// What a log line says about it: the cause, else the message.
    pub fn reason(&self) -> String {
        self.cause.clone().unwrap_or_else(|| self.message.clone())
    }
}

/// The provider's kind does not offer this (back-channel logout from Firebase, a password form
/// for an OpenID Connect provider, …). The route answers as it does for an unknown provider.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the provider's kind does not offer this")]
pub struct NotSupported;

/// A failed call to a provider: a timeout or connection failure is a 503 (try again); a refused
/// address or a malformed request is the provider being unusable as configured.
pub(crate) fn transport_error(provider_id: &str, e: HttpError) -> ProviderError {
    if e.is_transient() {
        ProviderError::unavailable(provider_id, e)
    } else {
        ProviderError::upstream(
            "provider_unreachable",
            format!(
                "The identity provider `{provider_id}` cannot be used: its address is not allowed or the request failed."
            ),
            e,
        )
    }
}

/// A provider's error code reduced to what is safe to repeat in a message or a log: letters,
/// digits and `_`, at most 64. Error descriptions and free text can echo request data, so only the
/// code is ever shown.
pub fn safe_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}
