//! `[keys]`: the ring of keys that seal provider tokens at rest. `current` seals; every key in
//! `ring` opens. Values are base64url 32-byte keys, or `file:PATH` to read one from a file.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::Environment;
use super::problem::{Problem, problem};
use crate::secret::{Secret, SecretKey};

/// The key ring, decoded: every key is 32 bytes.
#[derive(Clone)]
pub struct KeysConfig {
    pub current: String,
    pub ring: BTreeMap<String, SecretKey>,
}

impl fmt::Debug for KeysConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeysConfig")
            .field("current", &self.current)
            .field("key_ids", &self.ring.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeys {
    current: Option<String>,
    #[serde(default)]
    ring: BTreeMap<String, Secret>,
}

/// A key as `oidc-broker keys generate` prints it: 32 bytes, base64url without padding.
pub fn decode_key(encoded: &str) -> Option<SecretKey> {
    let bytes = URL_SAFE_NO_PAD.decode(encoded.trim()).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .ok()
        .map(SecretKey::new)
}

pub(super) fn validate_keys(
    raw: Option<RawKeys>,
    environment: Environment,
    problems: &mut Vec<Problem>,
) -> Option<KeysConfig> {
    let Some(raw) = raw else {
        if environment == Environment::Production {
            problem(
                problems,
                "keys",
                "missing: provider tokens are sealed at rest and production needs a lasting key",
                "run `oidc-broker keys generate` and add its [keys] lines (or BROKER_KEYS__CURRENT / BROKER_KEYS__RING__<ID>)",
            );
        }
        return None;
    };
    let ring = read_ring(raw.ring, problems);
    let Some(current) = raw.current else {
        problem(
            problems,
            "keys.current",
            "missing",
            "name the key that seals, e.g. current = \"k1\"",
        );
        return None;
    };
    let fix = "generate keys with `oidc-broker keys generate`";
    let mut decoded = BTreeMap::new();
    for (id, value) in ring {
        let Some(key) = decode_key(value.expose()) else {
            problem(
                problems,
                "keys",
                format!("key `{id}` is not 32 bytes of base64url"),
                fix,
            );
            return None;
        };
        decoded.insert(id, key);
    }
    if !decoded.contains_key(&current) {
        problem(
            problems,
            "keys",
            format!("the current key `{current}` is not in the ring"),
            fix,
        );
        return None;
    }
    Some(KeysConfig {
        current,
        ring: decoded,
    })
}

/// Each key's value, read from its file where it names one (a key whose file cannot be read is a
/// problem and left out).
fn read_ring(
    ring: BTreeMap<String, Secret>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, Secret> {
    let mut out = BTreeMap::new();
    for (id, value) in ring {
        let value = match value.expose().strip_prefix("file:") {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(v) => Secret::new(v.trim()),
                Err(e) => {
                    problem(
                        problems,
                        format!("keys.ring.{id}"),
                        format!("cannot read {path}: {e}"),
                        "point file: at a readable file holding one key",
                    );
                    continue;
                }
            },
            None => value,
        };
        out.insert(id, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, from_toml_str};
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn keys(section: &str) -> Result<super::super::Config, ConfigError> {
        from_toml_str(
            &format!(
                "[server]\nenvironment = \"development\"\n[providers.dev]\nkind = \"dev\"\n{section}"
            ),
            Vec::new(),
        )
    }

    fn messages(section: &str) -> Vec<String> {
        match keys(section) {
            Ok(_) => Vec::new(),
            Err(ConfigError(problems)) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn keys_are_decoded_at_load() {
        let c = keys(&format!(
            "[keys]\ncurrent = \"k1\"\n[keys.ring]\nk1 = \" {KEY} \"\n"
        ))
        .unwrap();
        let k = c.keys.unwrap();
        assert_eq!(k.current, "k1");
        let expected: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(k.ring["k1"].expose(), &expected);
        assert_eq!(decode_key(KEY).map(|k| *k.expose()), Some(expected));
        assert!(decode_key("c2hvcnQ").is_none());
        assert!(decode_key(&format!("{KEY}=")).is_none(), "no padding");
    }

    #[test]
    fn bad_rings_are_one_problem_each() {
        assert_eq!(
            messages("[keys]\ncurrent = \"k1\"\n[keys.ring]\nk0 = \"c2hvcnQ\"\nk1 = \"x\"\n"),
            [
                "keys: key `k0` is not 32 bytes of base64url (fix: generate keys with `oidc-broker keys generate`)"
            ]
        );
        assert_eq!(
            messages(&format!(
                "[keys]\ncurrent = \"k2\"\n[keys.ring]\nk1 = \"{KEY}\"\n"
            )),
            [
                "keys: the current key `k2` is not in the ring (fix: generate keys with `oidc-broker keys generate`)"
            ]
        );
        assert_eq!(
            messages(&format!("[keys]\n[keys.ring]\nk1 = \"{KEY}\"\n")),
            ["keys.current: missing (fix: name the key that seals, e.g. current = \"k1\")"]
        );
        let missing =
            messages("[keys]\ncurrent = \"k1\"\n[keys.ring]\nk1 = \"file:/nonexistent/k1\"\n");
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(
            missing[0].starts_with("keys.ring.k1: cannot read /nonexistent/k1"),
            "{missing:?}"
        );
        assert!(
            missing[1].contains("`k1` is not in the ring"),
            "{missing:?}"
        );
    }

    #[test]
    fn a_key_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k1");
        std::fs::write(&path, format!("{KEY}\n")).unwrap();
        let c = keys(&format!(
            "[keys]\ncurrent = \"k1\"\n[keys.ring]\nk1 = \"file:{}\"\n",
            path.display()
        ))
        .unwrap();
        assert!(c.keys.unwrap().ring.contains_key("k1"));
    }
}
