//! `kind = "firebase"`: a Firebase project's Authentication, signed in to on the broker's own page.

use serde::Deserialize;
use url::Url;

use super::{Check, Environment, KindSettings, RawProvider, is_loopback_host};

pub(super) const KEYS: &[&str] = &[
    "project_id",
    "api_key",
    "emulator_host",
    "federated",
    "keys_url",
    "service_account_file",
];

#[derive(Debug, Clone)]
pub struct FirebaseSettings {
    pub project_id: String,
    /// The Web API key: public by design (every web page that signs in to the project carries it).
    pub api_key: String,
    /// `host:port` of a Firebase Auth emulator (development, loopback only).
    pub emulator_host: Option<String>,
    /// Identity providers enabled in Firebase to offer on the sign-in page (`google.com`, `apple.com`,
    /// `oidc.NAME`, `saml.NAME`).
    pub federated: Vec<String>,
    /// Where Firebase's public signing keys are fetched; Google's securetoken key set by default.
    pub keys_url: Option<String>,
    /// A service account key file (JSON), for revoking a user's Firebase sessions at logout.
    pub service_account_file: Option<String>,
}

/// Why a service account key file is refused.
#[derive(Debug, thiserror::Error)]
enum ServiceAccountError {
    #[error("cannot read {path}: {error}")]
    Unreadable { path: String, error: std::io::Error },
    #[error("not a service account key file (client_email, private_key)")]
    NotAKeyFile,
    #[error("its private_key is not an RSA key")]
    NotRsa,
}

/// The parts of a service account key file that revoking sessions needs (the email is only
/// required here; the provider reads it when it signs in as the account).
#[derive(Deserialize)]
struct ServiceAccountKey {
    #[serde(rename = "client_email")]
    _client_email: String,
    private_key: String,
}

/// Checks a service account key file: readable JSON with a client email and an RSA private key.
fn check_service_account_file(path: &str) -> Result<(), ServiceAccountError> {
    let text = std::fs::read_to_string(path).map_err(|error| ServiceAccountError::Unreadable {
        path: path.to_string(),
        error,
    })?;
    let file: ServiceAccountKey =
        serde_json::from_str(&text).map_err(|_| ServiceAccountError::NotAKeyFile)?;
    jsonwebtoken::EncodingKey::from_rsa_pem(file.private_key.as_bytes())
        .map_err(|_| ServiceAccountError::NotRsa)?;
    Ok(())
}

pub(super) fn check(c: &mut Check<'_>, raw: &RawProvider) -> KindSettings {
    let project_id = c.required(
        "project_id",
        raw.project_id.clone(),
        "the Firebase project id (Project settings → General)",
    );
    let api_key = c.required(
        "api_key",
        raw.api_key.clone(),
        "the Web API key (Project settings → General)",
    );
    if let Some(host) = &raw.emulator_host {
        check_emulator_host(c, host);
    }
    if let Some(path) = &raw.service_account_file
        && let Err(e) = check_service_account_file(path)
    {
        c.problem(
            "service_account_file",
            e.to_string(),
            "download a key from Google Cloud → IAM → Service accounts (the Firebase Admin SDK one), or remove the key",
        );
    }
    if let Some(u) = &raw.keys_url
        && !Url::parse(u).is_ok_and(|u| c.secure_enough(&u))
    {
        c.problem(
            "keys_url",
            "must be an https URL (plain http only on loopback in development)",
            "remove it to use Google's securetoken key set",
        );
    }
    KindSettings {
        issuer: Some(format!("https://securetoken.google.com/{project_id}")),
        client_id: project_id.clone(),
        auth_params: Vec::new(),
        domain_base: None,
        firebase: Some(FirebaseSettings {
            project_id,
            api_key,
            emulator_host: raw.emulator_host.clone(),
            federated: raw.federated.clone().unwrap_or_default(),
            keys_url: raw.keys_url.clone(),
            service_account_file: raw.service_account_file.clone(),
        }),
    }
}

/// The emulator accepts unsigned tokens: development only, on a loopback `host:port`.
fn check_emulator_host(c: &mut Check<'_>, host: &str) {
    let loopback = Url::parse(&format!("http://{host}"))
        .is_ok_and(|u| is_loopback_host(&u) && u.port().is_some());
    if c.environment == Environment::Production {
        c.problem(
            "emulator_host",
            "the emulator accepts unsigned tokens, so it is refused in production",
            "remove emulator_host",
        );
    } else if !loopback {
        c.problem(
            "emulator_host",
            "must be a loopback host:port",
            "e.g. \"127.0.0.1:9099\"",
        );
    }
}
