//! A provider's metadata: OpenID Connect Discovery 1.0 (§4: `{issuer}/.well-known/openid-configuration`,
//! whose `issuer` must equal ours byte for byte) and the key set it names, read by hand so that a
//! failure names the URL and the missing or malformed field; and, for the endpoints discovery
//! leaves out, OAuth 2.0 Authorization Server Metadata (RFC 8414).

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, JsonWebKeySet, ProviderMetadata};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::http_client::HttpClient;

/// Discovery fields the core metadata type does not model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraMetadata {
    pub end_session_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    /// RFC 9207 §3: when true, a response without `iss` is refused.
    pub authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

pub type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// At most this much of a parse error is repeated (it can quote the document).
const MAX_DETAIL: usize = 240;

/// A failed discovery: the message names the URL and what was wrong there.
#[derive(Debug, Clone)]
pub struct DiscoveryError {
    /// A timeout or connection failure (worth retrying); otherwise the provider answered wrongly.
    pub transient: bool,
    pub message: String,
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// OpenID Connect Discovery §4.1: the issuer without a terminating `/`, then the well-known path.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Where RFC 8414 metadata may be, in order: §3.1's form, the well-known segment inserted between
/// the host and the issuer's path (terminating `/` removed); for an issuer with a path, also the
/// issuer with the segment appended, the OpenID Connect style some servers use instead.
pub fn authorization_server_metadata_urls(issuer: &str) -> Vec<Url> {
    const SEGMENT: &str = "/.well-known/oauth-authorization-server";
    let Ok(parsed) = Url::parse(issuer) else {
        return Vec::new();
    };
    if parsed.cannot_be_a_base() || parsed.host_str().is_none() {
        return Vec::new();
    }
    let path = parsed.path().trim_end_matches('/').to_string();
    let mut inserted = parsed.clone();
    inserted.set_query(None);
    inserted.set_fragment(None);
    inserted.set_path(&format!("{SEGMENT}{path}"));
    let mut urls = vec![inserted];
    if !path.is_empty()
        && let Ok(appended) = Url::parse(&format!("{}{SEGMENT}", issuer.trim_end_matches('/')))
        && !urls.contains(&appended)
    {
        urls.push(appended);
    }
    urls
}

/// Fetches and checks the discovery document, then its key set.
pub async fn discover(http: &HttpClient, issuer: &str) -> Result<Metadata, DiscoveryError> {
    let url = discovery_url(issuer);
    let what = format!("discovery at {url}");
    let mut metadata: Metadata = fetch_json(http, &url, &what).await?;
    if metadata.issuer().as_str() != issuer {
        return Err(DiscoveryError {
            transient: false,
            message: format!(
                "{what}: `issuer` is `{}`, not the configured `{issuer}` (they must match byte for byte)",
                clip(metadata.issuer().as_str())
            ),
        });
    }
    let jwks_url = metadata.jwks_uri().url().to_string();
    let jwks: JsonWebKeySet<CoreJsonWebKey> =
        fetch_json(http, &jwks_url, &format!("keys at {jwks_url}")).await?;
    metadata = metadata.set_jwks(jwks);
    Ok(metadata)
}

/// The parts of RFC 8414 metadata the broker uses (plus `end_session_endpoint`, which some servers
/// publish there too).
#[derive(Debug, Clone, Deserialize)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    #[serde(default)]
    pub end_session_endpoint: Option<Url>,
}

/// RFC 8414 metadata for `issuer`, if the provider publishes it; §3.3: its `issuer` must be ours
/// exactly, or it is ignored. Optional by nature, so every failure is only logged.
pub async fn authorization_server_metadata(
    http: &HttpClient,
    provider: &str,
    issuer: &str,
) -> Option<AuthorizationServerMetadata> {
    for url in authorization_server_metadata_urls(issuer) {
        let what = format!("RFC 8414 metadata at {url}");
        match fetch_json::<AuthorizationServerMetadata>(http, url.as_str(), &what).await {
            Ok(m) if m.issuer == issuer => return Some(m),
            Ok(m) => {
                tracing::warn!(
                    provider,
                    "{what}: `issuer` is `{}`, not `{issuer}`; ignored",
                    clip(&m.issuer)
                );
            }
            Err(e) => tracing::debug!(provider, reason = %e, "no RFC 8414 metadata there"),
        }
    }
    None
}

async fn fetch_json<T: DeserializeOwned>(
    http: &HttpClient,
    url: &str,
    what: &str,
) -> Result<T, DiscoveryError> {
    let parsed = Url::parse(url).map_err(|_| DiscoveryError {
        transient: false,
        message: format!("{what}: not a URL"),
    })?;
    let resp = http.get(&parsed, None).await.map_err(|e| DiscoveryError {
        transient: e.is_transient(),
        message: format!("{what}: {e}"),
    })?;
    if resp.status() != http::StatusCode::OK {
        return Err(DiscoveryError {
            // A 5xx or 429 may pass; a 404 or 403 is how the provider is set up.
            transient: resp.status().is_server_error()
                || resp.status() == http::StatusCode::TOO_MANY_REQUESTS,
            message: format!("{what}: status {}", resp.status()),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(resp.body());
    serde_path_to_error::deserialize(&mut de).map_err(|e| DiscoveryError {
        transient: false,
        message: format!("{what}: {}", describe(&e)),
    })
}

/// `missing field `jwks_uri``, or `` `response_types_supported`: invalid type … ``: the field
/// and the problem, without serde's line and column (a discovery document is usually one line).
fn describe(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let inner = e.inner();
    let mut text = inner.to_string();
    let position = format!(" at line {} column {}", inner.line(), inner.column());
    if let Some(stripped) = text.strip_suffix(&position) {
        text = stripped.to_string();
    }
    if inner.is_syntax() || inner.is_eof() {
        return format!("not JSON ({})", clip(&text));
    }
    let path = e.path().to_string();
    if path == "." || path.is_empty() {
        clip(&text)
    } else {
        format!("`{}`: {}", clip(&path), clip(&text))
    }
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_DETAIL {
        return s.to_string();
    }
    let mut end = MAX_DETAIL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn discovery_url_drops_a_terminating_slash() {
        assert_eq!(
            discovery_url("https://idp.example.com/"),
            "https://idp.example.com/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://idp.example.com/realms/x"),
            "https://idp.example.com/realms/x/.well-known/openid-configuration"
        );
    }

    #[test]
    fn rfc8414_urls_insert_the_well_known_segment_before_the_path() {
        let urls = |i: &str| {
            authorization_server_metadata_urls(i)
                .into_iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            urls("https://as.example.com"),
            ["https://as.example.com/.well-known/oauth-authorization-server"]
        );
        assert_eq!(
            urls("https://as.example.com/"),
            ["https://as.example.com/.well-known/oauth-authorization-server"]
        );
        assert_eq!(
            urls("https://as.example.com/tenant/v2/"),
            [
                "https://as.example.com/.well-known/oauth-authorization-server/tenant/v2",
                "https://as.example.com/tenant/v2/.well-known/oauth-authorization-server"
            ]
        );
        assert_eq!(
            urls("http://127.0.0.1:8080/pool"),
            [
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server/pool",
                "http://127.0.0.1:8080/pool/.well-known/oauth-authorization-server"
            ]
        );
        assert!(urls("not a url").is_empty());
        assert!(urls("mailto:a@b").is_empty());
    }

    #[test]
    fn parse_errors_name_the_field() {
        let err = |doc: &str| {
            let mut de = serde_json::Deserializer::from_str(doc);
            describe(&serde_path_to_error::deserialize::<_, Metadata>(&mut de).unwrap_err())
        };
        let missing = err(
            r#"{"issuer":"https://i","authorization_endpoint":"https://i/a","response_types_supported":["code"],"subject_types_supported":["public"],"id_token_signing_alg_values_supported":["RS256"]}"#,
        );
        assert_eq!(missing, "missing field `jwks_uri`");
        let wrong = err(
            r#"{"issuer":"https://i","authorization_endpoint":"https://i/a","jwks_uri":"https://i/k","response_types_supported":"code","subject_types_supported":["public"],"id_token_signing_alg_values_supported":["RS256"]}"#,
        );
        assert!(wrong.starts_with("`response_types_supported`: "), "{wrong}");
        assert!(err("<html>").starts_with("not JSON"));
    }

    proptest! {
        /// Any issuer path: the §3.1 URL keeps scheme, host and port, starts its path with the
        /// well-known segment, ends with the issuer's path, and carries no query or fragment.
        #[test]
        fn rfc8414_url_keeps_the_origin_and_the_path(
            segments in proptest::collection::vec("[A-Za-z0-9._~-]{1,8}", 0..4),
            trailing in any::<bool>(),
            port in proptest::option::of(1u16..),
        ) {
            let host = match port {
                Some(p) => format!("as.example.com:{p}"),
                None => "as.example.com".to_string(),
            };
            let mut issuer = format!("https://{host}");
            for s in &segments {
                issuer.push('/');
                issuer.push_str(s);
            }
            if trailing {
                issuer.push('/');
            }
            let urls = authorization_server_metadata_urls(&issuer);
            prop_assert!(!urls.is_empty());
            let first = &urls[0];
            let issuer_url = Url::parse(&issuer).unwrap();
            prop_assert_eq!(first.origin(), issuer_url.origin());
            prop_assert!(first.path().starts_with("/.well-known/oauth-authorization-server"));
            prop_assert!(first.path().ends_with(issuer_url.path().trim_end_matches('/')));
            prop_assert!(!first.path().ends_with('/'));
            prop_assert!(first.query().is_none() && first.fragment().is_none());
            prop_assert_eq!(urls.len(), if issuer_url.path().trim_end_matches('/').is_empty() { 1 } else { 2 });
        }

        /// Error details never grow past the bound, whatever the document quoted.
        #[test]
        fn clipped_details_stay_bounded(s in ".{0,600}") {
            prop_assert!(clip(&s).chars().count() <= MAX_DETAIL + 1);
        }
    }
}
