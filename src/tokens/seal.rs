//! Sealing provider tokens at rest: AES-256-GCM under a key ring, the key id inside each blob, so
//! a new key seals while old keys still open. The additional data binds a blob to the session it
//! belongs to: a blob copied into another session's row does not open.
//!
//! Blob format: `v1.{key id}.{base64url(nonce ‖ ciphertext ‖ tag)}`.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::crypto::{b64url, b64url_decode};
use crate::secret::SecretKey;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed with key `{0}`, which is not in the key ring")]
    UnknownKey(String),
    #[error("sealed value does not open (wrong key, or altered)")]
    Tampered,
    #[error("sealing failed")]
    Crypto,
}

/// Why keys do not make a ring (the configuration's check refuses these first).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRingError {
    #[error("key `{0}` is unusable")]
    Unusable(String),
    #[error("the current key `{0}` is not in the ring")]
    NoCurrent(String),
}

pub struct KeyRing {
    current: String,
    keys: BTreeMap<String, LessSafeKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A new random 256-bit key.
pub fn random_key() -> Result<SecretKey, SealError> {
    let mut k = [0u8; 32];
    SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| SealError::Crypto)?;
    Ok(SecretKey::new(k))
}

/// A new random 256-bit key, base64url, as `oidc-broker keys generate` prints it.
pub fn generate_key() -> Result<String, SealError> {
    random_key().map(|k| b64url(k.expose()))
}

impl KeyRing {
    /// `keys` maps key ids to keys (as the configuration decodes them); `current` seals.
    pub fn new(current: &str, keys: &BTreeMap<String, SecretKey>) -> Result<KeyRing, KeyRingError> {
        let mut ring = BTreeMap::new();
        for (id, key) in keys {
            let unbound = UnboundKey::new(&AES_256_GCM, key.expose())
                .map_err(|_| KeyRingError::Unusable(id.clone()))?;
            ring.insert(id.clone(), LessSafeKey::new(unbound));
        }
        if !ring.contains_key(current) {
            return Err(KeyRingError::NoCurrent(current.to_string()));
        }
        Ok(KeyRing {
            current: current.to_string(),
            keys: ring,
        })
    }

    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, SealError> {
        let key = self.keys.get(&self.current).ok_or(SealError::Crypto)?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Crypto)?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut buf,
        )
        .map_err(|_| SealError::Crypto)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("v1.{}.{}", self.current, b64url(&out)))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Malformed);
        };
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| SealError::UnknownKey(kid.to_string()))?;
        let raw = b64url_decode(body).ok_or(SealError::Malformed)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
        let mut buf = ct.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SealError::Tampered)?;
        Ok(plain.to_vec())
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(current: &str, ids: &[(&str, &str)]) -> KeyRing {
        KeyRing::new(
            current,
            &ids.iter()
                .map(|(a, b)| (a.to_string(), crate::config::decode_key(b).unwrap()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn sealed_values_open_with_their_key_and_context_only() {
        let k1 = generate_key().unwrap();
        let r = ring("k1", &[("k1", &k1)]);
        let sealed = r.seal(b"refresh-token-value", "ses_a").unwrap();
        assert!(!sealed.contains("refresh-token-value"));
        assert!(sealed.starts_with("v1.k1."));
        assert_eq!(r.open(&sealed, "ses_a").unwrap(), b"refresh-token-value");
        assert_eq!(
            r.open(&sealed, "ses_b"),
            Err(SealError::Tampered),
            "bound to its session"
        );
        let mut altered = sealed.clone();
        altered.push('A');
        assert!(r.open(&altered, "ses_a").is_err());
    }

    #[test]
    fn a_new_key_seals_while_old_keys_still_open() {
        let (k1, k2) = (generate_key().unwrap(), generate_key().unwrap());
        let old = ring("k1", &[("k1", &k1)]).seal(b"t", "c").unwrap();
        let rotated = ring("k2", &[("k1", &k1), ("k2", &k2)]);
        assert_eq!(rotated.open(&old, "c").unwrap(), b"t");
        assert!(rotated.seal(b"t", "c").unwrap().starts_with("v1.k2."));
        let only_new = ring("k2", &[("k2", &k2)]);
        assert_eq!(
            only_new.open(&old, "c"),
            Err(SealError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn a_ring_without_its_current_key_is_refused() {
        let keys = [("k1".to_string(), random_key().unwrap())]
            .into_iter()
            .collect::<BTreeMap<_, _>>();
        assert!(KeyRing::new("k1", &keys).is_ok());
        assert_eq!(
            KeyRing::new("k2", &keys).err(),
            Some(KeyRingError::NoCurrent("k2".into()))
        );
    }

    #[test]
    fn generated_keys_decode_as_the_configuration_reads_them() {
        let encoded = generate_key().unwrap();
        assert_eq!(encoded.len(), 43);
        assert!(crate::config::decode_key(&encoded).is_some());
    }
}
