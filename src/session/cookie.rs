//! The broker's cookies: names and attributes.

use std::time::Duration;

use tower_sessions::cookie::SameSite;

use crate::config::{SameSitePolicy, ServerConfig};

/// Names and attributes of the broker's cookies.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    pub session_name: &'static str,
    pub login_name: &'static str,
    /// Where an app's logout lands after the provider's logout (OpenID Provider mode).
    pub logout_name: &'static str,
    pub secure: bool,
    /// The session cookie's `SameSite`. The login-binding cookie is always `Lax`: it must come
    /// back on the provider's top-level redirect to the callback, which `Strict` would prevent.
    pub same_site: SameSite,
}

impl CookiePolicy {
    /// `__Host-` names need `Secure`, which browsers only accept over https; plain-http loopback
    /// development therefore uses unprefixed names without `Secure`.
    pub fn for_server(server: &ServerConfig) -> Self {
        let same_site = match server.same_site {
            SameSitePolicy::Lax => SameSite::Lax,
            SameSitePolicy::Strict => SameSite::Strict,
            SameSitePolicy::None => SameSite::None,
        };
        if server.is_https() {
            CookiePolicy {
                session_name: "__Host-broker_session",
                login_name: "__Host-broker_login",
                logout_name: "__Host-broker_logout",
                secure: true,
                same_site,
            }
        } else {
            CookiePolicy {
                session_name: "broker_session",
                login_name: "broker_login",
                logout_name: "broker_logout",
                secure: false,
                same_site,
            }
        }
    }

    /// A `Set-Cookie` value for the login-binding cookie.
    pub fn login_cookie(&self, value: &str, max_age: Duration) -> String {
        self.lax_cookie(self.login_name, value, max_age)
    }

    /// A `Set-Cookie` value for the cookie that remembers where an app's logout lands; a zero
    /// `max_age` clears it.
    pub fn logout_cookie(&self, value: &str, max_age: Duration) -> String {
        self.lax_cookie(self.logout_name, value, max_age)
    }

    fn lax_cookie(&self, name: &str, value: &str, max_age: Duration) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            name,
            value,
            max_age.as_secs(),
            if self.secure { "; Secure" } else { "" }
        )
    }
}
