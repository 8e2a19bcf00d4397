//! RS256 signing for the tokens the broker itself issues (the built-in dev provider, broker JWTs).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use serde_json::{Value, json};

use crate::crypto::b64url;

#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(String);

pub struct RsaSigner {
    kid: String,
    key: KeyPair,
}

impl RsaSigner {
    pub fn generate(kid: impl Into<String>) -> Result<Self, SignError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|e| SignError(e.to_string()))?;
        Ok(RsaSigner {
            kid: kid.into(),
            key,
        })
    }

    /// A key from its PKCS#8 DER form (as [`RsaSigner::pkcs8`] writes it).
    pub fn from_pkcs8(kid: impl Into<String>, der: &[u8]) -> Result<Self, SignError> {
        let key = KeyPair::from_pkcs8(der).map_err(|e| SignError(e.to_string()))?;
        Ok(RsaSigner {
            kid: kid.into(),
            key,
        })
    }

    /// The private key, PKCS#8 DER: to be sealed before it is stored anywhere.
    pub fn pkcs8(&self) -> Result<Vec<u8>, SignError> {
        self.key
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| SignError(e.to_string()))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A compact JWS over `claims` with `{"alg":"RS256","typ":"JWT","kid":…}`.
    pub fn sign(&self, claims: &Value) -> Result<String, SignError> {
        self.sign_with_header(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    /// A compact JWS with the header given as is (its `alg` should say RS256).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> Result<String, SignError> {
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|e| SignError(e.to_string()))?;
        Ok(format!("{signing_input}.{}", b64url(&sig)))
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let public = self.key.public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": b64url(public.modulus().big_endian_without_leading_zero()),
            "e": b64url(public.exponent().big_endian_without_leading_zero()),
        })
    }
}
