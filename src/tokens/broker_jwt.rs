//! Broker access tokens: short-lived RS256 JWTs that name the local user and session, for token
//! mode and for the APIs behind the broker. The signing keys live in the store (private halves
//! sealed under the `[keys]` ring), so every instance signs with the same key and verifies every
//! other instance's tokens. A key signs for `signing_key_lifetime`, then a new one takes over; the
//! old public key stays published until every token it signed has expired, so a rotation breaks no
//! token in flight.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::config::TokensConfig;
use crate::crypto;
use crate::jose::RsaSigner;
use crate::store::{SigningKeyRow, Store};
use crate::tokens::TokenVault;
pub use crate::tokens::claims::{AccessClaims, JwtError};
use crate::tokens::verified::VerifiedTokens;

/// What a verified token must say.
pub struct Expect<'a> {
    pub issuer: &'a str,
    /// Any one of these is its `aud`.
    pub audiences: &'a [&'a str],
    /// An expired token is still read (an `id_token_hint` at logout).
    pub allow_expired: bool,
}

struct PublicKey {
    jwk: Value,
    created_at: i64,
    decoding: DecodingKey,
}

#[derive(Default)]
struct KeySet {
    /// The key that signs now, with its creation time.
    signer: Option<(Arc<RsaSigner>, i64)>,
    /// When the newest key this instance can sign with was made.
    newest: i64,
    public: HashMap<String, Arc<PublicKey>>,
    /// When the set was last read from the store (unix seconds).
    loaded_at: i64,
}

/// The broker's signing keys, cached from the store.
pub struct BrokerKeys {
    set: RwLock<KeySet>,
    /// One reload or key generation at a time in this process.
    reload: tokio::sync::Mutex<()>,
    /// Access tokens that verified, remembered.
    verified: VerifiedTokens,
}

/// Unknown `kid`s reload the set from the store at most this often (a flood of forged tokens must
/// not turn into a flood of store reads). Keys are made ahead of use, so another instance's new
/// key is normally known long before its first token arrives.
const RELOAD_EVERY_SECS: i64 = 1;

impl Default for BrokerKeys {
    fn default() -> Self {
        BrokerKeys {
            set: RwLock::new(KeySet::default()),
            reload: tokio::sync::Mutex::new(()),
            verified: VerifiedTokens::default(),
        }
    }
}

fn lifetime(config: &TokensConfig) -> i64 {
    i64::try_from(config.signing_key_lifetime.as_secs()).unwrap_or(30 * 86400)
}

/// The next key is made this long before the current one stops signing, and published from then
/// on, so that verifiers that cache the JWKS know it before the first token it signs.
fn prepublish(config: &TokensConfig) -> i64 {
    (lifetime(config) / 10).min(86400)
}

/// Keys created before this are neither used nor published.
pub fn publish_cutoff(config: &TokensConfig, now: i64) -> i64 {
    let ttl = i64::try_from(config.access_ttl.as_secs()).unwrap_or(300);
    now - lifetime(config) - ttl
}

fn context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

impl BrokerKeys {
    /// The cached signer, if it still signs and its successor is not due yet.
    fn current_signer(&self, config: &TokensConfig, now: i64) -> Option<Arc<RsaSigner>> {
        let set = self.set.read().ok()?;
        let (signer, created) = set.signer.as_ref()?;
        let successor_due = now >= set.newest + lifetime(config) - prepublish(config);
        (now < created + lifetime(config) && !successor_due).then(|| signer.clone())
    }

    /// Reads every key from the store into the cache.
    async fn reload(
        &self,
        store: &Store,
        vault: &TokenVault,
        config: &TokensConfig,
        now: i64,
    ) -> Result<(), JwtError> {
        let mut rows = store
            .signing_keys()
            .await
            .map_err(|e| JwtError::Keys(e.to_string()))?;
        // Oldest first: the oldest key that still signs is the signer, so a successor made ahead
        // of time waits its turn.
        rows.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        let cutoff = publish_cutoff(config, now);
        let mut fresh = KeySet {
            loaded_at: now,
            ..Default::default()
        };
        for row in rows.iter().filter(|r| r.created_at >= cutoff) {
            let Some(public) = public_key(row) else {
                continue;
            };
            fresh.public.insert(row.kid.clone(), Arc::new(public));
            if now >= row.created_at + lifetime(config) {
                continue;
            }
            // A key sealed under a key that has left the ring is only published.
            let Some(signer) = vault
                .open_value(&row.sealed_private, &context(&row.kid))
                .ok()
                .and_then(|der| crypto::b64url_decode(&der))
                .and_then(|der| RsaSigner::from_pkcs8(row.kid.clone(), &der).ok())
            else {
                continue;
            };
            fresh.newest = fresh.newest.max(row.created_at);
            if fresh.signer.is_none() {
                fresh.signer = Some((Arc::new(signer), row.created_at));
            }
        }
        if let Ok(mut set) = self.set.write() {
            *set = fresh;
        }
        Ok(())
    }

    /// The key to sign with: the cached one, else the store's, making the next key when it is due.
    async fn signer(
        &self,
        store: &Store,
        vault: &TokenVault,
        config: &TokensConfig,
        now: i64,
    ) -> Result<Arc<RsaSigner>, JwtError> {
        if let Some(s) = self.current_signer(config, now) {
            return Ok(s);
        }
        let _one = self.reload.lock().await;
        if let Some(s) = self.current_signer(config, now) {
            return Ok(s);
        }
        self.reload(store, vault, config, now).await?;
        if let Some(s) = self.current_signer(config, now) {
            return Ok(s);
        }
        let kid = format!("bk_{}", crypto::random_token(9));
        let signer = RsaSigner::generate(kid.clone()).map_err(|e| JwtError::Keys(e.to_string()))?;
        let der = signer.pkcs8().map_err(|e| JwtError::Keys(e.to_string()))?;
        let sealed = vault
            .seal_value(&crypto::b64url(&der), &context(&kid))
            .map_err(|e| JwtError::Keys(e.to_string()))?;
        store
            .add_signing_key(&SigningKeyRow {
                kid: kid.clone(),
                sealed_private: sealed,
                public_jwk: signer.jwk().to_string(),
                created_at: now,
            })
            .await
            .map_err(|e| JwtError::Keys(e.to_string()))?;
        tracing::info!(%kid, "new signing key for broker tokens");
        self.reload(store, vault, config, now).await?;
        self.current_signer(config, now)
            .ok_or_else(|| JwtError::Keys("the new key did not load".into()))
    }

    pub async fn sign(
        &self,
        store: &Store,
        vault: &TokenVault,
        config: &TokensConfig,
        claims: &AccessClaims,
    ) -> Result<String, JwtError> {
        let value = serde_json::to_value(claims).map_err(|e| JwtError::Keys(e.to_string()))?;
        self.sign_claims(store, vault, config, claims.iat, &value)
            .await
    }

    /// Signs any claims with the current key (ID tokens, logout tokens).
    pub async fn sign_claims(
        &self,
        store: &Store,
        vault: &TokenVault,
        config: &TokensConfig,
        now: i64,
        claims: &Value,
    ) -> Result<String, JwtError> {
        let signer = self.signer(store, vault, config, now).await?;
        signer
            .sign(claims)
            .map_err(|e| JwtError::Keys(e.to_string()))
    }

    fn public(&self, kid: &str) -> Option<Arc<PublicKey>> {
        self.set.read().ok()?.public.get(kid).cloned()
    }

    /// Verifies signature, `iss`, `aud` and `exp` (against the broker's clock). A token that
    /// verified before is answered from memory while it is unexpired and its key still published.
    pub async fn verify(
        &self,
        store: &Store,
        vault: &TokenVault,
        config: &TokensConfig,
        issuer: &str,
        token: &str,
        now: i64,
    ) -> Result<Arc<AccessClaims>, JwtError> {
        let key_holds = |kid: &str| {
            self.public(kid)
                .is_some_and(|key| key.created_at >= publish_cutoff(config, now))
        };
        if let Some(claims) = self
            .verified
            .get(token, issuer, &config.audience, now, key_holds)?
        {
            return Ok(claims);
        }
        let check = Expect {
            issuer,
            audiences: &[&config.audience],
            allow_expired: false,
        };
        let (claims, kid) = self
            .verify_signed(store, vault, config, &check, token, now)
            .await?;
        let claims: Arc<AccessClaims> =
            Arc::new(serde_json::from_value(claims).map_err(|e| JwtError::Invalid(e.to_string()))?);
        self.verified.put(token, &kid, claims.clone());
        Ok(claims)
    }

    /// Verifies a token this broker signed: signature by a published key, `iss`, one of the `aud`s,
    /// and unless allowed, `exp` against the broker's clock.
    pub async fn verify_claims(
        &self,
        store: &Store,
        vault: &TokenVault,
        config: &TokensConfig,
        expect: &Expect<'_>,
        token: &str,
        now: i64,
    ) -> Result<Value, JwtError> {
        self.verify_signed(store, vault, config, expect, token, now)
            .await
            .map(|(claims, _)| claims)
    }

    /// [`Self::verify_claims`], also giving the `kid` of the key that signed.
    async fn verify_signed(
        &self,
        store: &Store,
        vault: &TokenVault,
        config: &TokensConfig,
        expect: &Expect<'_>,
        token: &str,
        now: i64,
    ) -> Result<(Value, String), JwtError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(JwtError::Invalid("algorithm".into()));
        }
        let kid = header
            .kid
            .ok_or_else(|| JwtError::Invalid("no kid".into()))?;
        let key = self
            .public_or_reload(store, vault, config, &kid, now)
            .await?;
        if key.created_at < publish_cutoff(config, now) && !expect.allow_expired {
            return Err(JwtError::Invalid("retired key".into()));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[expect.issuer]);
        validation.set_audience(expect.audiences);
        // Time is checked below against the broker's clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp"]);
        let data = jsonwebtoken::decode::<Value>(token, &key.decoding, &validation)
            .map_err(|e| JwtError::Invalid(e.to_string()))?;
        let exp = data.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if exp <= now && !expect.allow_expired {
            return Err(JwtError::Expired);
        }
        Ok((data.claims, kid))
    }

    /// The public key `kid`, reloading the set once if another instance may have made it.
    async fn public_or_reload(
        &self,
        store: &Store,
        vault: &TokenVault,
        config: &TokensConfig,
        kid: &str,
        now: i64,
    ) -> Result<Arc<PublicKey>, JwtError> {
        if let Some(k) = self.public(kid) {
            return Ok(k);
        }
        let stale = || {
            self.set
                .read()
                .map(|s| now - s.loaded_at >= RELOAD_EVERY_SECS)
                .unwrap_or(true)
        };
        if stale() {
            let _one = self.reload.lock().await;
            // Checked again under the lock: concurrent unknown kids share one reload.
            if stale() {
                self.reload(store, vault, config, now).await?;
            }
        }
        self.public(kid)
            .ok_or_else(|| JwtError::Invalid("unknown kid".into()))
    }

    /// The JWKS: every key whose tokens may still be in flight.
    pub async fn jwks(
        &self,
        store: &Store,
        vault: &TokenVault,
        config: &TokensConfig,
        now: i64,
    ) -> Result<Value, JwtError> {
        // Make sure there is a key to publish before anyone needs one.
        self.signer(store, vault, config, now).await?;
        let cutoff = publish_cutoff(config, now);
        let set = self
            .set
            .read()
            .map_err(|_| JwtError::Keys("key cache poisoned".into()))?;
        let mut keys: Vec<&Arc<PublicKey>> = set
            .public
            .values()
            .filter(|k| k.created_at >= cutoff)
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        Ok(serde_json::json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }))
    }

    /// Re-reads the store (the sweeper calls this so that rotations elsewhere are seen).
    pub async fn refresh(
        &self,
        store: &Store,
        vault: &TokenVault,
        config: &TokensConfig,
        now: i64,
    ) -> Result<(), JwtError> {
        let _one = self.reload.lock().await;
        self.reload(store, vault, config, now).await
    }
}

fn public_key(row: &SigningKeyRow) -> Option<PublicKey> {
    let jwk: Value = serde_json::from_str(&row.public_jwk).ok()?;
    let n = jwk.get("n")?.as_str()?;
    let e = jwk.get("e")?.as_str()?;
    let decoding = DecodingKey::from_rsa_components(n, e).ok()?;
    Some(PublicKey {
        jwk,
        created_at: row.created_at,
        decoding,
    })
}
