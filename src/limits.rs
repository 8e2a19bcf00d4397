//! Request rates per client, so that one client cannot make the broker write without bound: every
//! login start stores a transaction, and failures are audited. Each group of endpoints
//! ([`Group`]) has its own GCRA limiter (the `governor` crate) keyed by the client's address — an
//! IPv6 client by its /64, the smallest network a provider hands a subscriber — and the Firebase
//! password form has one more, keyed by the account it names.
//!
//! Limits live in this process's memory: with several instances, each allows its own rate. What a
//! limiter keeps is bounded: [`Limits::prune`] (every minute) forgets clients whose allowance is
//! full again, and beyond `max_clients` tracked keys a new client shares one allowance with every
//! other untracked client until pruning makes room, so a flood from many addresses still cannot
//! grow memory or the store.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::clock::SharedClock;
use crate::config::{LimitsConfig, Rate};

/// The endpoints that share one allowance per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Login,
    Callback,
    Token,
    Firebase,
    /// The Firebase password form, per account.
    FirebaseAccount,
    ProviderLogout,
    Admin,
}

impl Group {
    const ALL: [Group; 7] = [
        Group::Login,
        Group::Callback,
        Group::Token,
        Group::Firebase,
        Group::FirebaseAccount,
        Group::ProviderLogout,
        Group::Admin,
    ];

    /// Its key in `[limits]`.
    pub fn name(self) -> &'static str {
        match self {
            Group::Login => "login",
            Group::Callback => "callback",
            Group::Token => "token",
            Group::Firebase => "firebase",
            Group::FirebaseAccount => "firebase_account",
            Group::ProviderLogout => "provider_logout",
            Group::Admin => "admin",
        }
    }

    fn rate(self, config: &LimitsConfig) -> Option<Rate> {
        match self {
            Group::Login => config.login,
            Group::Callback => config.callback,
            Group::Token => config.token,
            Group::Firebase => config.firebase,
            Group::FirebaseAccount => config.firebase_account,
            Group::ProviderLogout => config.provider_logout,
            Group::Admin => config.admin,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The group of a route, by its path pattern (`/auth/callback/{provider}`); `None` for routes
    /// that are not limited.
    pub fn of_route(pattern: &str) -> Option<Group> {
        let under = |prefix: &str| pattern.starts_with(prefix);
        match pattern {
            // An authorization request may store itself while the user signs in upstream.
            "/auth/login" | "/oauth2/authorize" | "/oauth2/authorize/resume" | "/oauth2/logout" => {
                Some(Group::Login)
            }
            "/auth/token" | "/auth/token/refresh" | "/oauth2/token" | "/oauth2/revoke" => {
                Some(Group::Token)
            }
            _ if under("/auth/callback/") => Some(Group::Callback),
            _ if under("/auth/firebase/") => Some(Group::Firebase),
            _ if under("/auth/backchannel-logout/") || under("/auth/frontchannel-logout/") => {
                Some(Group::ProviderLogout)
            }
            _ if under("/admin/") => Some(Group::Admin),
            _ => None,
        }
    }
}

/// Who a limiter counts: a client network, an account (a salted hash of it, so no address is kept
/// in memory), or everyone it has no room to track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    Untracked,
    V4(u32),
    /// The first 64 bits.
    V6(u64),
    Account([u8; 16]),
}

impl ClientKey {
    fn of_ip(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(u32::from(v4)),
                None => ClientKey::V6(u64::try_from(u128::from(v6) >> 64).unwrap_or(u64::MAX)),
            },
        }
    }
}

/// governor's concurrent map, with a cap on the number of keys.
struct BoundedStore {
    map: DashMapStateStore<ClientKey>,
    max: usize,
}

impl StateStore for BoundedStore {
    type Key = ClientKey;

    fn measure_and_replace<T, F, E>(&self, key: &ClientKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // Concurrent new clients can pass the check together: the cap is approximate by that much.
        let key = if !self.map.contains_key(key) && self.map.len() >= self.max {
            &ClientKey::Untracked
        } else {
            key
        };
        self.map.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<ClientKey> for BoundedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        self.map.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The broker's clock as governor's time source (time since the Unix epoch), so tests move it.
struct BrokerClock(SharedClock);

impl GovernorClock for BrokerClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::try_from(self.0.now() - OffsetDateTime::UNIX_EPOCH).unwrap_or_default()
    }
}

type Limiter = RateLimiter<ClientKey, BoundedStore, BrokerClock, NoOpMiddleware<Duration>>;

/// A request over its group's rate.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub group: Group,
    pub retry_after: Duration,
}

impl Refused {
    /// Whole seconds for `Retry-After`, rounded up (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// Every group's limiter.
pub struct Limits {
    limiters: Vec<Option<Limiter>>,
    refused: Vec<AtomicU64>,
    max_clients: usize,
    /// Keys the account hashes, so that a memory dump holds no guessable email digests.
    salt: [u8; 16],
}

impl Limits {
    pub fn new(config: &LimitsConfig, clock: SharedClock) -> Limits {
        let limiters = Group::ALL
            .iter()
            .map(|g| {
                let quota = quota(g.rate(config)?)?;
                let store = BoundedStore {
                    map: DashMapStateStore::default(),
                    max: config.max_clients,
                };
                Some(RateLimiter::new(quota, store, BrokerClock(clock.clone())))
            })
            .collect();
        Limits {
            limiters,
            refused: Group::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            max_clients: config.max_clients,
            salt: rand::random(),
        }
    }

    /// One request from `ip` to `group` (no address: counted with every other unknown client).
    pub fn check_client(&self, group: Group, ip: Option<IpAddr>) -> Result<(), Refused> {
        self.check(group, ip.map_or(ClientKey::Untracked, ClientKey::of_ip))
    }

    /// One Firebase password attempt for the account `email` (case and surrounding space ignored).
    pub fn check_account(&self, email: &str) -> Result<(), Refused> {
        let digest = Sha256::new()
            .chain_update(self.salt)
            .chain_update(email.trim().to_lowercase().as_bytes())
            .finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        self.check(Group::FirebaseAccount, ClientKey::Account(key))
    }

    fn check(&self, group: Group, key: ClientKey) -> Result<(), Refused> {
        let Some(Some(limiter)) = self.limiters.get(group.index()) else {
            return Ok(());
        };
        limiter.check_key(&key).map_err(|not_until| {
            if let Some(n) = self.refused.get(group.index()) {
                n.fetch_add(1, Ordering::Relaxed);
            }
            Refused {
                group,
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            }
        })
    }

    /// Forgets the clients whose allowance is full again, gives the memory back, and logs what
    /// was refused since the last call (one line, however many refusals). Run every minute.
    pub fn prune(&self) {
        let mut refused = Vec::new();
        for (group, (limiter, count)) in Group::ALL
            .iter()
            .zip(self.limiters.iter().zip(&self.refused))
        {
            let n = count.swap(0, Ordering::Relaxed);
            if n > 0 {
                refused.push(format!("{} {n}", group.name()));
            }
            let Some(limiter) = limiter else { continue };
            limiter.retain_recent();
            limiter.shrink_to_fit();
            if limiter.len() >= self.max_clients {
                tracing::warn!(
                    group = group.name(),
                    max_clients = self.max_clients,
                    "rate limiting tracks as many clients as [limits] max_clients allows: new clients share one allowance"
                );
            }
        }
        if !refused.is_empty() {
            tracing::warn!(refused = %refused.join(", "), "requests refused by [limits] since the last minute");
        }
    }

    /// How many clients a group's limiter tracks.
    pub fn tracked(&self, group: Group) -> usize {
        match self.limiters.get(group.index()) {
            Some(Some(limiter)) => limiter.len(),
            _ => 0,
        }
    }
}

fn quota(rate: Rate) -> Option<Quota> {
    Some(Quota::with_period(rate.interval())?.allow_burst(NonZeroU32::new(rate.burst)?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::parse_rate;

    fn limits(configure: impl FnOnce(&mut LimitsConfig)) -> (Limits, Arc<ManualClock>) {
        let mut config = LimitsConfig::default();
        configure(&mut config);
        let clock = Arc::new(ManualClock::default());
        (Limits::new(&config, clock.clone()), clock)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_for_the_rate() {
        let (l, clock) = limits(|c| c.login = parse_rate("6/min burst 3").unwrap());
        for _ in 0..3 {
            l.check_client(Group::Login, ip("192.0.2.1")).unwrap();
        }
        let refused = l.check_client(Group::Login, ip("192.0.2.1")).unwrap_err();
        assert_eq!(refused.group, Group::Login);
        assert_eq!(refused.retry_after_secs(), 10);
        // Another address and another group are not touched.
        l.check_client(Group::Login, ip("192.0.2.2")).unwrap();
        l.check_client(Group::Callback, ip("192.0.2.1")).unwrap();
        clock.advance(Duration::from_secs(10));
        l.check_client(Group::Login, ip("192.0.2.1")).unwrap();
        l.check_client(Group::Login, ip("192.0.2.1")).unwrap_err();
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_bit_network() {
        let (l, _) = limits(|c| c.login = parse_rate("2/min").unwrap());
        l.check_client(Group::Login, ip("2001:db8:1:2::1")).unwrap();
        l.check_client(Group::Login, ip("2001:db8:1:2:ffff::9"))
            .unwrap();
        l.check_client(Group::Login, ip("2001:db8:1:2::7"))
            .unwrap_err();
        l.check_client(Group::Login, ip("2001:db8:1:3::1")).unwrap();
        // An IPv4-mapped address is the IPv4 client.
        l.check_client(Group::Login, ip("198.51.100.1")).unwrap();
        l.check_client(Group::Login, ip("::ffff:198.51.100.1"))
            .unwrap();
        l.check_client(Group::Login, ip("198.51.100.1"))
            .unwrap_err();
    }

    #[test]
    fn accounts_are_one_whatever_the_case_and_spaces() {
        let (l, _) = limits(|c| c.firebase_account = parse_rate("2/min").unwrap());
        l.check_account("Ada@Example.com").unwrap();
        l.check_account(" ada@example.com ").unwrap();
        l.check_account("ADA@EXAMPLE.COM").unwrap_err();
        l.check_account("bob@example.com").unwrap();
    }

    #[test]
    fn a_group_turned_off_is_never_refused() {
        let (l, _) = limits(|c| c.admin = None);
        for _ in 0..5000 {
            l.check_client(Group::Admin, ip("192.0.2.1")).unwrap();
        }
        assert_eq!(l.tracked(Group::Admin), 0);
    }

    #[test]
    fn tracked_clients_are_capped_and_the_rest_share_one_allowance() {
        let (l, _) = limits(|c| {
            c.callback = parse_rate("2/min").unwrap();
            c.max_clients = 1000;
        });
        for i in 0..1000u32 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            l.check_client(Group::Callback, Some(a.into())).unwrap();
        }
        assert_eq!(l.tracked(Group::Callback), 1000);
        // Two new addresses use up the shared allowance; a third is refused, and nothing grows
        // beyond the one shared key.
        l.check_client(Group::Callback, ip("203.0.113.1")).unwrap();
        l.check_client(Group::Callback, ip("203.0.113.2")).unwrap();
        l.check_client(Group::Callback, ip("203.0.113.3"))
            .unwrap_err();
        assert_eq!(l.tracked(Group::Callback), 1001);
        // A tracked client keeps its own allowance.
        l.check_client(Group::Callback, ip("10.0.0.5")).unwrap();
    }

    proptest::proptest! {
        #[test]
        fn any_submitted_email_is_one_account_whatever_its_case_and_padding(
            email in "[a-zA-Z0-9@._+-]{1,64}",
            pad in " {0,3}",
            junk in proptest::prelude::any::<String>(),
        ) {
            let (l, _) = limits(|c| c.firebase_account = parse_rate("1/min").unwrap());
            // Anything at all is accepted as a key; it never panics.
            let _ = l.check_account(&junk);
            l.check_account(&email).unwrap();
            let variant = format!("{pad}{}{pad}", email.to_ascii_uppercase());
            proptest::prop_assert!(l.check_account(&variant).is_err());
        }

        #[test]
        fn every_address_of_an_ipv6_64_is_one_client(network in 1u64.., a: u64, b: u64) {
            let addr = |host: u64| {
                Some(IpAddr::V6(std::net::Ipv6Addr::from((u128::from(network) << 64) | u128::from(host))))
            };
            let (l, _) = limits(|c| c.login = parse_rate("1/min").unwrap());
            l.check_client(Group::Login, addr(a)).unwrap();
            proptest::prop_assert!(l.check_client(Group::Login, addr(b)).is_err());
            let next = network.checked_add(1).unwrap_or(1);
            let other = (u128::from(next) << 64) | u128::from(a);
            proptest::prop_assert!(l.check_client(Group::Login, Some(IpAddr::V6(other.into()))).is_ok());
        }
    }

    #[test]
    fn pruning_forgets_clients_whose_allowance_is_full_again() {
        let (l, clock) = limits(|c| c.token = parse_rate("60/min burst 5").unwrap());
        for i in 0..50u32 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            l.check_client(Group::Token, Some(a.into())).unwrap();
        }
        l.prune();
        assert_eq!(l.tracked(Group::Token), 50, "recent clients are kept");
        clock.advance(Duration::from_secs(60));
        l.prune();
        assert_eq!(l.tracked(Group::Token), 0);
    }
}
