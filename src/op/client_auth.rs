//! Who is calling the token and revocation endpoints (RFC 6749 §2.3): a confidential client by its
//! registered method — HTTP Basic or the form body — with its secret compared in constant time, or a
//! public client by its `client_id` alone (its codes are bound by PKCE instead).

use super::{Op, OpError};
use crate::config::{ClientAuth, ClientConfig};

/// The credentials a request presented.
#[derive(Debug, Default)]
pub struct Presented<'r> {
    /// `Authorization: Basic …`, decoded: id and secret.
    pub basic: Option<(String, String)>,
    pub client_id: Option<&'r str>,
    pub client_secret: Option<&'r str>,
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1); `Err` when
/// the header is Basic but does not decode.
pub fn basic(header: Option<&str>) -> Result<Option<(String, String)>, OpError> {
    let Some(value) = header else { return Ok(None) };
    let Some(b64) = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim())
    else {
        return Ok(None);
    };
    let bad = || OpError::invalid_client("The Authorization header is not valid HTTP Basic.");
    let raw = base64_standard(b64).ok_or_else(bad)?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((decode(id), decode(secret))))
}

fn base64_standard(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// The authenticated client, or `invalid_client` (401).
pub fn authenticate<'a>(op: &Op<'a>, p: &Presented<'_>) -> Result<&'a ClientConfig, OpError> {
    let unknown = || OpError::invalid_client("Client authentication failed.");
    if p.basic.is_some() && p.client_secret.is_some() {
        return Err(OpError::oauth(
            "invalid_request",
            "Use one client authentication method, not both HTTP Basic and client_secret.",
        ));
    }
    let (id, secret, method) = match (&p.basic, p.client_secret) {
        (Some((id, secret)), _) => (id.as_str(), Some(secret.as_str()), ClientAuth::SecretBasic),
        (None, Some(secret)) => (
            p.client_id.ok_or_else(unknown)?,
            Some(secret),
            ClientAuth::SecretPost,
        ),
        (None, None) => (p.client_id.ok_or_else(unknown)?, None, ClientAuth::None),
    };
    if p.client_id.is_some_and(|body| body != id) {
        return Err(unknown());
    }
    let client = op.client(id).ok_or_else(unknown)?;
    let secret_ok = match (&client.secret, secret) {
        (Some(ours), Some(given)) => ours.matches(given),
        (None, None) => true,
        _ => false,
    };
    // Compared whatever the method, so a wrong method costs the same time as a wrong secret.
    if !secret_ok || client.auth != method {
        return Err(unknown());
    }
    Ok(client)
}
