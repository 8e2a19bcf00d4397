//! The one judge of caller-chosen redirect targets (`return_to`, `post_logout_url`, the dev
//! provider's `post_logout_redirect_uri`, and anything added later). It lives with the
//! configuration, which states the policy (the public URL and `allowed_origins`) and checks
//! `post_logout_url` with it at load: see [`crate::config::redirect`].

pub use crate::config::redirect::{MAX_LEN, RedirectError, RedirectPolicy};
