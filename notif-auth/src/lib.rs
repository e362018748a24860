//! notif-auth: who is calling. Verifies bearer JWTs ([`JwtVerifier`], the `TokenVerifier`
//! port) against trusted issuers' JWKS, maps claims to a `Principal`, holds the app registry
//! built from configuration ([`AppDirectory`], the `AppRegistry` port), and embeds an OAuth 2
//! identity provider ([`IdentityProvider`]) with client credentials, on-behalf-of and refresh
//! grants, so the whole flow runs on one machine.
//!
//! It decides identity only: what a principal may do is notif-core's CreatedByApp rule. It
//! must not expose jsonwebtoken or reqwest types beyond the JWKS document type.
//!
//! Modules:
//! - `claims` — [`Claims`] and their mapping to a principal.
//! - `verifier` — [`JwtVerifier`] and [`TrustedIssuer`].
//! - `verified` — the memo of recently verified tokens behind [`JwtVerifier`].
//! - `jwks` — [`KeySource`]: remote JWKS with rate-limited refresh, or shared in-process keys.
//! - `registry` — [`AppDirectory`], [`AppConfig`], secret hashing, the demo app.
//! - `idp` — [`IdentityProvider`], its signing keys and OAuth messages.
//! - `error` — [`Error`].

mod claims;
mod error;
mod idp;
mod jwks;
mod registry;
mod verified;
mod verifier;

pub use claims::Claims;
pub use error::Error;
pub use idp::oauth::{OAuthError, OAuthErrorCode, TokenRequest, TokenResponse};
pub use idp::provider::{IdentityProvider, IdentityProviderConfig, JWT_BEARER_GRANT};
pub use jsonwebtoken::jwk::JwkSet;
pub use jwks::{KeySource, RemoteJwks, SharedKeys};
pub use registry::{
    AppConfig, AppDirectory, ClientAuthError, ClientConfig, DEMO_APP_SERVICE_CLIENT,
    DEMO_APP_SERVICE_SECRET, DEMO_DEVICE_CLIENT, DEMO_HOST, SANDBOX_CREDENTIAL, hash_secret,
};
pub use verifier::{DEFAULT_LEEWAY, JwtVerifier, TrustedIssuer};
