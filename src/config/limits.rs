//! `[limits]`: how many requests a client address may make to the endpoints that unauthenticated
//! callers can make write (login starts, callbacks, token endpoints, Firebase sign-in, provider
//! logout, the admin API), and how many logins a browser may have in flight.
//!
//! A rate is written `"600/min"` (600 a minute, all of them at once if need be) or
//! `"600/min burst 50"` (the same rate, at most 50 at once), with `s`, `min` or `h`; `"off"` turns
//! a group's limit off. The defaults are far above what a real app sends from one address.

use std::time::Duration;

use serde::Deserialize;

use super::{Problem, problem, section};

/// A sustained rate and the burst allowed on top of an idle period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per `per`.
    pub count: u32,
    pub per: Duration,
    /// At most this many at once (by default `count`).
    pub burst: u32,
}

impl Rate {
    const fn per_minute(count: u32) -> Option<Rate> {
        Some(Rate {
            count,
            per: Duration::from_secs(60),
            burst: count,
        })
    }

    /// One request's worth of time: the interval at which the allowance refills.
    pub fn interval(&self) -> Duration {
        self.per / self.count.max(1)
    }
}

/// Each group's rate per client address (`None`: no limit), the per-account rate of the Firebase
/// password form, and the bounds on what limiting and login starts may keep.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// `GET /auth/login`.
    pub login: Option<Rate>,
    /// `GET /auth/callback/{id}`.
    pub callback: Option<Rate>,
    /// `POST /auth/token`, `POST /auth/token/refresh`.
    pub token: Option<Rate>,
    /// `/auth/firebase/{id}/…`.
    pub firebase: Option<Rate>,
    /// `POST /auth/firebase/{id}/password`, per account (the email), whatever the address.
    pub firebase_account: Option<Rate>,
    /// `/auth/backchannel-logout/{id}`, `/auth/frontchannel-logout/{id}`.
    pub provider_logout: Option<Rate>,
    /// `/admin/…`.
    pub admin: Option<Rate>,
    /// Clients (addresses or accounts) tracked per group; beyond it, new ones share one allowance.
    pub max_clients: usize,
    /// Logins in flight per browser: a new one beyond it ends the oldest of that browser.
    pub logins_per_browser: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            login: Rate::per_minute(600),
            callback: Rate::per_minute(600),
            token: Rate::per_minute(600),
            firebase: Rate::per_minute(300),
            firebase_account: Rate::per_minute(10),
            // A provider ending many sessions at once (a user deleted everywhere, a tenant
            // signed out) sends one request per session, and does not retry a refusal.
            provider_logout: Rate::per_minute(6000),
            admin: Rate::per_minute(1200),
            max_clients: 100_000,
            logins_per_browser: 10,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    login: Option<String>,
    callback: Option<String>,
    token: Option<String>,
    firebase: Option<String>,
    firebase_account: Option<String>,
    provider_logout: Option<String>,
    admin: Option<String>,
    max_clients: Option<toml::Value>,
    logins_per_browser: Option<toml::Value>,
}

/// The most requests per period a rate may name: beyond it, turn the limit off instead.
const MAX_COUNT: u32 = 1_000_000;

/// Removes and validates `[limits]`.
pub(super) fn take(table: &mut toml::Table, problems: &mut Vec<Problem>) -> LimitsConfig {
    let raw: RawLimits = section(table, "limits", problems);
    let mut config = LimitsConfig::default();
    for (key, given, slot) in [
        ("login", raw.login, &mut config.login),
        ("callback", raw.callback, &mut config.callback),
        ("token", raw.token, &mut config.token),
        ("firebase", raw.firebase, &mut config.firebase),
        (
            "firebase_account",
            raw.firebase_account,
            &mut config.firebase_account,
        ),
        (
            "provider_logout",
            raw.provider_logout,
            &mut config.provider_logout,
        ),
        ("admin", raw.admin, &mut config.admin),
    ] {
        let Some(s) = given else { continue };
        match parse_rate(&s) {
            Ok(rate) => *slot = rate,
            Err(why) => problem(
                problems,
                format!("limits.{key}"),
                format!("`{s}` {why}"),
                "write requests per period, e.g. \"600/min\", \"10/s\" or \"600/min burst 50\", or \"off\"",
            ),
        }
    }
    if let Some(v) = raw.max_clients {
        match whole_number(&v).filter(|n| (1_000..=10_000_000).contains(n)) {
            Some(n) => config.max_clients = n,
            None => problem(
                problems,
                "limits.max_clients",
                format!("`{v}` is not a number from 1000 to 10000000"),
                "use e.g. 100000 (the default; about 4 MB per limited group when full)",
            ),
        }
    }
    if let Some(v) = raw.logins_per_browser {
        match whole_number(&v).filter(|n| (1..=1_000).contains(n)) {
            Some(n) => config.logins_per_browser = n,
            None => problem(
                problems,
                "limits.logins_per_browser",
                format!("`{v}` is not a number from 1 to 1000"),
                "use e.g. 10 (the default): enough for every tab a person signs in from at once",
            ),
        }
    }
    config
}

/// An integer, or (from the environment) a string holding one.
fn whole_number(v: &toml::Value) -> Option<usize> {
    let n = match v {
        toml::Value::Integer(n) => Some(*n),
        toml::Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.and_then(|n| usize::try_from(n).ok())
}

/// Why a string is not a rate (the message follows the value: "`10/day` has `day` as its period…").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("is not a rate")]
    NotARate,
    #[error("does not start with a number of requests from 1 to {MAX_COUNT}")]
    Count,
    #[error("has `{0}` as its period, not s, min or h")]
    Period(String),
    #[error("has a burst that is not a number from 1 to {MAX_COUNT}")]
    Burst,
    #[error("has something after the rate other than `burst N`")]
    Trailing,
}

/// `"off"`, `"N/s"`, `"N/min"`, `"N/h"`, each optionally followed by `burst B`.
pub fn parse_rate(s: &str) -> Result<Option<Rate>, RateError> {
    let s = s.trim();
    if s == "off" {
        return Ok(None);
    }
    let mut words = s.split_whitespace();
    let Some((count, unit)) = words.next().and_then(|w| w.split_once('/')) else {
        return Err(RateError::NotARate);
    };
    let count = count
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_COUNT).contains(n))
        .ok_or(RateError::Count)?;
    let per = match unit {
        "s" => Duration::from_secs(1),
        "min" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(RateError::Period(unit.to_string())),
    };
    let burst = match (words.next(), words.next(), words.next()) {
        (None, _, _) => count,
        (Some("burst"), Some(b), None) => b
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_COUNT).contains(n))
            .ok_or(RateError::Burst)?,
        _ => return Err(RateError::Trailing),
    };
    Ok(Some(Rate { count, per, burst }))
}

#[cfg(test)]
mod tests {
    use super::super::from_toml_str;
    use super::*;

    const DEV: &str = "[server]\nenvironment = \"development\"\n[providers.dev]\nkind = \"dev\"\n";

    #[test]
    fn rates_parse_with_periods_bursts_and_off() {
        assert_eq!(
            parse_rate("600/min"),
            Ok(Some(Rate {
                count: 600,
                per: Duration::from_secs(60),
                burst: 600
            }))
        );
        assert_eq!(
            parse_rate(" 10/s burst 3 "),
            Ok(Some(Rate {
                count: 10,
                per: Duration::from_secs(1),
                burst: 3
            }))
        );
        assert_eq!(
            parse_rate("100/h").unwrap().unwrap().interval(),
            Duration::from_secs(36)
        );
        assert_eq!(parse_rate("off"), Ok(None));
        for bad in [
            "",
            "600",
            "600/day",
            "0/min",
            "-1/min",
            "x/min",
            "600/min burst",
            "600/min burst 0",
            "600/min fast",
            "600/min burst 5 6",
            "2000000/s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_on_and_generous() {
        let c = from_toml_str(DEV, Vec::new()).unwrap();
        let l = &c.limits;
        assert_eq!(l.login.unwrap().count, 600);
        assert_eq!(l.firebase_account.unwrap().count, 10);
        assert_eq!(l.max_clients, 100_000);
        assert_eq!(l.logins_per_browser, 10);
    }

    #[test]
    fn every_key_is_read_and_the_environment_overrides() {
        let c = from_toml_str(
            &format!(
                "[limits]\nlogin = \"5/s\"\ncallback = \"off\"\ntoken = \"7/min burst 2\"\nfirebase = \"1/h\"\n\
                 firebase_account = \"3/min\"\nprovider_logout = \"9/min\"\nadmin = \"4/min\"\nmax_clients = 5000\n{DEV}"
            ),
            vec![
                ("BROKER_LIMITS__ADMIN".to_string(), "8/min".to_string()),
                ("BROKER_LIMITS__LOGINS_PER_BROWSER".to_string(), "3".to_string()),
            ],
        )
        .unwrap();
        let l = &c.limits;
        assert_eq!(l.login.unwrap().per, Duration::from_secs(1));
        assert_eq!(l.callback, None);
        assert_eq!(l.token.unwrap().burst, 2);
        assert_eq!(l.firebase.unwrap().per, Duration::from_secs(3600));
        assert_eq!(l.firebase_account.unwrap().count, 3);
        assert_eq!(l.provider_logout.unwrap().count, 9);
        assert_eq!(l.admin.unwrap().count, 8);
        assert_eq!(l.max_clients, 5000);
        assert_eq!(l.logins_per_browser, 3);
    }

    #[test]
    fn bad_values_are_problems_with_their_keys() {
        let err = from_toml_str(
            &format!(
                "[limits]\nlogin = \"600/day\"\nadmin = \"lots\"\nmax_clients = 10\nlogins_per_browser = 0\n{DEV}"
            ),
            Vec::new(),
        )
        .unwrap_err();
        let keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "limits.login",
            "limits.admin",
            "limits.max_clients",
            "limits.logins_per_browser",
        ] {
            assert!(keys.contains(&k), "{k} not in {keys:?}");
        }
        let login = err.0.iter().find(|p| p.key == "limits.login").unwrap();
        assert!(login.message.contains("`day`"), "{login}");
        assert!(login.fix.contains("600/min"), "{login}");
        let err =
            from_toml_str(&format!("[limits]\nsignup = \"1/s\"\n{DEV}"), Vec::new()).unwrap_err();
        assert!(err.0.iter().any(|p| p.key == "limits"), "{err}");
    }
}
