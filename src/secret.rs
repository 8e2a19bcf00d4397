//! Credentials held in memory: a client secret, the admin token, a sealing key. Their `Debug` and
//! `Display` print nothing of the value, so a configuration or a struct holding one can be logged
//! or formatted without leaking it; the value is read only through [`Secret::expose`] (or
//! [`SecretKey::expose`]), which makes every use easy to find.

use std::fmt;

use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret string, as written in the configuration.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that must send or use it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `given` is this secret, in a time that depends on neither value nor on their
    /// lengths: both are hashed first, then the hashes compared in constant time.
    pub fn matches(&self, given: &str) -> bool {
        let ours = Sha256::digest(self.0.as_bytes());
        let theirs = Sha256::digest(given.as_bytes());
        ours.ct_eq(&theirs).into()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

/// Read from a plain string, so configuration files write secrets as they always did.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// A 256-bit key, decoded.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_shows_nothing_of_the_value() {
        let s = Secret::new("hunter2-the-value");
        assert_eq!(format!("{s:?}"), "Secret(redacted)");
        assert_eq!(format!("{s}"), "(redacted)");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(Secret(redacted))");
        assert_eq!(s.expose(), "hunter2-the-value");
        let k = SecretKey::new([7; 32]);
        assert_eq!(format!("{k:?}"), "SecretKey(redacted)");
        assert_eq!(k.expose(), &[7; 32]);
    }

    #[test]
    fn secrets_are_read_from_plain_strings() {
        #[derive(Deserialize)]
        struct T {
            s: Secret,
        }
        let t: T = toml::from_str("s = \"from-a-file\"").unwrap();
        assert_eq!(t.s.expose(), "from-a-file");
        assert!(toml::from_str::<T>("s = 7").is_err());
    }

    #[test]
    fn matching_needs_the_exact_value() {
        let s = Secret::new("0123456789abcdef0123456789abcdef");
        assert!(s.matches("0123456789abcdef0123456789abcdef"));
        assert!(!s.matches("0123456789abcdef0123456789abcdeF"));
        assert!(!s.matches("0123456789abcdef0123456789abcdef "));
        assert!(!s.matches(""));
    }
}
