//! `JwtVerifier`: the `TokenVerifier` port on jsonwebtoken, for several trusted issuers.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use notif_core::app::Principal;
use notif_core::ports::{TokenError, TokenVerifier};
use serde::Deserialize;

use crate::claims::{Claims, unix_seconds};
use crate::jwks::KeySource;
use crate::verified::VerifiedTokens;

/// The only algorithms accepted. Never `none`, never HS* (a public key must not become an
/// HMAC secret).
const ALLOWED_ALGORITHMS: [&str; 2] = ["RS256", "ES256"];

/// An issuer whose tokens are accepted, for one audience.
#[derive(Debug)]
pub struct TrustedIssuer {
    /// The exact `iss` value.
    pub issuer: String,
    /// The `aud` value tokens must carry (this service's identifier at that issuer).
    pub audience: String,
    /// Where its signing keys come from.
    pub keys: KeySource,
}

/// Verifies bearer JWTs from trusted issuers. A token that verified is remembered for up to
/// a minute (never past its expiry), so a client reusing it pays for one signature check.
pub struct JwtVerifier {
    issuers: Vec<TrustedIssuer>,
    leeway: Duration,
    verified: VerifiedTokens,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("JwtVerifier")
            .field("issuers", &self.issuers)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// The default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

impl JwtVerifier {
    /// A verifier accepting tokens of `issuers`, with `leeway` for `exp` and `nbf`.
    pub fn new(issuers: Vec<TrustedIssuer>, leeway: Duration) -> Self {
        Self {
            issuers,
            leeway,
            verified: VerifiedTokens::default(),
        }
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
}

#[derive(Deserialize)]
struct UnverifiedIssuer {
    iss: Option<String>,
}

/// Reads the header's `alg` as text, before any typed parsing, so `none` and HS* tokens get
/// their own clear refusal rather than a parse error.
fn header_algorithm(token: &str) -> Result<String, TokenError> {
    let segment = token
        .split('.')
        .next()
        .filter(|segment| !segment.is_empty())
        .ok_or_else(|| TokenError::Malformed("not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed("header is not base64url".into()))?;
    let header: RawHeader = serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Malformed("header is not JSON".into()))?;
    header
        .alg
        .ok_or_else(|| TokenError::Malformed("header has no alg".into()))
}

fn map_error(error: jsonwebtoken::errors::Error) -> TokenError {
    match error.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidSignature => TokenError::InvalidSignature,
        ErrorKind::InvalidAlgorithm => TokenError::AlgorithmNotAllowed("key mismatch".into()),
        ErrorKind::MissingRequiredClaim(claim) => TokenError::InvalidClaim(match claim.as_str() {
            "exp" => "exp",
            "aud" => "aud",
            "iss" => "iss",
            _ => "claims",
        }),
        _ => TokenError::Malformed(error.to_string()),
    }
}

#[async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, bearer: &str) -> Result<Principal, TokenError> {
        let token = bearer.trim();
        let now = unix_seconds(std::time::SystemTime::now());
        if let Some(principal) = self.verified.get(token, now) {
            return Ok(principal);
        }
        let claims = self.verify_claims(token).await?;
        let principal = claims.principal()?;
        let expires_at = claims.exp.saturating_add(self.leeway.as_secs());
        self.verified
            .insert(token, principal.clone(), now, expires_at);
        Ok(principal)
    }
}

impl JwtVerifier {
    /// Checks `token`'s algorithm, key, signature and claims, and returns its claims.
    async fn verify_claims(&self, token: &str) -> Result<Claims, TokenError> {
        let algorithm = header_algorithm(token)?;
        if !ALLOWED_ALGORITHMS.contains(&algorithm.as_str()) {
            return Err(TokenError::AlgorithmNotAllowed(algorithm));
        }
        let header = jsonwebtoken::decode_header(token).map_err(map_error)?;
        let kid = header.kid.ok_or(TokenError::InvalidClaim("kid"))?;
        // The issuer is read before the signature is checked only to pick its keys; the
        // signature and the issuer are both verified below.
        let unverified: UnverifiedIssuer =
            jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(map_error)?;
        let issuer_name = unverified.iss.ok_or(TokenError::InvalidClaim("iss"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|issuer| issuer.issuer == issuer_name)
            .ok_or(TokenError::WrongIssuer)?;
        let jwk = issuer.keys.key(&kid).await?;
        // Algorithm confusion: a key published for one algorithm never verifies another.
        if let Some(key_algorithm) = jwk.common.key_algorithm
            && Algorithm::try_from(key_algorithm).ok() != Some(header.alg)
        {
            return Err(TokenError::AlgorithmNotAllowed(format!(
                "{algorithm} with a key for {key_algorithm:?}"
            )));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(map_error)?;
        let allowed = match header.alg {
            Algorithm::RS256 | Algorithm::ES256 => header.alg,
            other => return Err(TokenError::AlgorithmNotAllowed(format!("{other:?}"))),
        };
        let mut validation = Validation::new(allowed);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_audience(&[&issuer.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(map_error)?;
        Ok(data.claims)
    }
}
