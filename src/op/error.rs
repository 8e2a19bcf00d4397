//! What the provider side refuses, in the terms of OAuth 2.0 (RFC 6749 §4.1.2.1, §5.2) and OpenID
//! Connect; `crate::error` turns it into an answer.

use crate::session::SessionError;
use crate::tokens::broker_jwt::JwtError;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The client or its redirect URI cannot be trusted with a redirect: shown to the person.
    #[error("{code}: {message}")]
    Page { code: &'static str, message: String },
    /// An OAuth error (`invalid_grant`, `invalid_request`, …) for the client.
    #[error("{error}: {description}")]
    OAuth {
        error: &'static str,
        description: String,
        /// 401 rather than 400 (`invalid_client`, `invalid_token`).
        unauthorized: bool,
    },
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("signing: {0}")]
    Keys(#[from] JwtError),
}

impl OpError {
    pub fn oauth(error: &'static str, description: impl Into<String>) -> Self {
        OpError::OAuth {
            error,
            description: description.into(),
            unauthorized: false,
        }
    }

    pub fn page(code: &'static str, message: impl Into<String>) -> Self {
        OpError::Page {
            code,
            message: message.into(),
        }
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        OpError::OAuth {
            error: "invalid_client",
            description: description.into(),
            unauthorized: true,
        }
    }

    pub fn invalid_token(description: impl Into<String>) -> Self {
        OpError::OAuth {
            error: "invalid_token",
            description: description.into(),
            unauthorized: true,
        }
    }

    /// A bug or broken invariant (data that does not encode or decode).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        OpError::Session(SessionError::Internal(e.to_string()))
    }

    pub fn invalid_grant() -> Self {
        OpError::oauth(
            "invalid_grant",
            "The code or refresh token is invalid, expired, already used, or its sign-in has ended.",
        )
    }
}

impl From<sqlx::Error> for OpError {
    fn from(e: sqlx::Error) -> Self {
        OpError::Session(SessionError::Sql(e))
    }
}
