//! URLs a provider's table names: explicit endpoints, and the domain of Auth0 and Cognito.

use url::Url;

use super::Check;

/// An explicit endpoint: a URL without credentials or fragment, https (plain http only for a
/// loopback host in development, as for issuers).
pub(super) fn endpoint_url(c: &mut Check<'_>, k: &str, value: &Option<String>) -> Option<Url> {
    let value = value.as_deref()?;
    let Ok(u) = Url::parse(value) else {
        c.problem(
            k,
            format!("`{value}` is not a URL"),
            "write the full URL, e.g. \"https://idp.example.com/oauth2/revoke\", or remove the key",
        );
        return None;
    };
    if u.host_str().is_none()
        || !u.username().is_empty()
        || u.password().is_some()
        || u.fragment().is_some()
    {
        c.problem(
            k,
            "must be a plain URL with a host, without credentials or fragment",
            "write the endpoint as the provider documents it",
        );
        None
    } else if !c.secure_enough(&u) {
        c.problem(
            k,
            "must use https (plain http only for a loopback host in development)",
            "use the provider's https endpoint",
        );
        None
    } else {
        Some(u)
    }
}

/// `tenant.auth0.com` → `https://tenant.auth0.com`, for Auth0 and Cognito. A full `http://` URL is
/// accepted only for a loopback host in development (a local fake or emulator).
pub(super) fn domain_base(c: &mut Check<'_>, domain: &str) -> Option<String> {
    let with_scheme = if domain.contains("://") {
        domain.to_string()
    } else {
        format!("https://{domain}")
    };
    match Url::parse(&with_scheme) {
        Ok(u)
            if u.host_str().is_some()
                && (u.path() == "/" || u.path().is_empty())
                && u.query().is_none() =>
        {
            if c.secure_enough(&u) {
                Some(with_scheme.trim_end_matches('/').to_string())
            } else {
                c.problem(
                    "domain",
                    "plain http is only accepted for a loopback host in development",
                    "write the bare domain, e.g. \"tenant.auth0.com\"",
                );
                None
            }
        }
        _ => {
            c.problem(
                "domain",
                format!("`{domain}` is not a domain"),
                "write the bare domain, e.g. \"tenant.auth0.com\" or \"auth.example.com\"",
            );
            None
        }
    }
}
