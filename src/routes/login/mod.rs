//! Signing in: `GET /auth/login` starts a login (`start`); `GET /auth/callback/{id}` finishes it
//! (`callback`). What every sign-in surface shares — `return_to`, token mode, landing back in
//! the app — is in `landing`; [`finish_login`] is the common end of every kind's flow: claims →
//! identity → local user → fresh session.

mod callback;
mod finish;
mod landing;
mod sign_in_page;
mod start;

use axum::Router;
use axum::routing::get;

use super::AppState;

pub use finish::finish_login;
pub use landing::{find_provider, land, login_failed, token_mode, validate_return_to};
pub use sign_in_page::sign_in_page;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(start::login))
        .route("/auth/callback/{provider}", get(callback::callback))
}
