//! `IdentityProvider`: the embedded OAuth 2 identity provider — token endpoint grants,
//! development sign-in, JWKS and OpenID discovery documents — so the whole flow runs on one
//! machine with no setup. A library: the server exposes it over HTTP.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, Header};
use notif_core::app::{App, SCOPE_CREATED_BY_APP};
use notif_core::ids::{ClientId, UserId};
use notif_core::ports::{
    AppRegistry, IdentityStore, RefreshGrant, SpentRefresh, StoreError, TokenVerifier,
};
use notif_core::time::Timestamp;
use sha2::{Digest, Sha256};

use super::keys::{self, KeyRing};
use super::oauth::{OAuthError, OAuthErrorCode, TokenRequest, TokenResponse};
use super::secrets::SecretGate;
use crate::claims::{Claims, unix_seconds};
use crate::error::Error;
use crate::jwks::KeySource;
use crate::registry::AppDirectory;
use crate::verifier::{DEFAULT_LEEWAY, JwtVerifier, TrustedIssuer};

/// The on-behalf-of grant type.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How the embedded identity provider runs.
#[derive(Debug, Clone)]
pub struct IdentityProviderConfig {
    /// The `iss` of its tokens: the server's base URL (`http://127.0.0.1:50051`).
    pub issuer: String,
    /// The `aud` of its tokens: notif's identifier.
    pub audience: String,
    /// Access-token lifetime (default 60 minutes).
    pub access_token_lifetime: Duration,
    /// Refresh-token lifetime (default 30 days).
    pub refresh_token_lifetime: Duration,
    /// Whether development sign-in (a user token for anyone, no password) is offered. Only
    /// for development: refuse it whenever external issuers are configured.
    pub development_sign_in: bool,
    /// A key file an earlier version kept (`<data dir>/idp-keys.json`): its keys move into
    /// the store when the store has none, so tokens issued before keep verifying.
    pub legacy_key_file: Option<PathBuf>,
}

impl IdentityProviderConfig {
    /// Defaults for `issuer`: audience `api://notif`, 60-minute access and 30-day refresh
    /// tokens, development sign-in on, no legacy key file.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: "api://notif".into(),
            access_token_lifetime: Duration::from_secs(60 * 60),
            refresh_token_lifetime: Duration::from_secs(30 * 24 * 60 * 60),
            development_sign_in: true,
            legacy_key_file: None,
        }
    }
}

/// The embedded identity provider.
pub struct IdentityProvider {
    config: IdentityProviderConfig,
    apps: Arc<AppDirectory>,
    keys: RwLock<KeyRing>,
    own_tokens: JwtVerifier,
    /// Signing keys and refresh grants, shared by every node.
    store: Arc<dyn IdentityStore>,
    secrets: SecretGate,
}

impl fmt::Debug for IdentityProvider {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("IdentityProvider")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .finish_non_exhaustive()
    }
}

fn random_token() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| OAuthError::new(OAuthErrorCode::InvalidRequest, "no randomness available"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn invalid_grant(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidGrant, description)
}

/// The store could not be reached: the request may be retried.
fn unavailable(error: StoreError) -> OAuthError {
    OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, error.to_string())
        .retry_after(Duration::from_secs(1))
}

fn timestamp(time: SystemTime) -> Timestamp {
    let millis = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    Timestamp::from_unix_millis(millis)
}

impl IdentityProvider {
    /// An identity provider for the apps of `apps`, its state in `store`: it signs with the
    /// store's keys, creating the first (or moving a legacy key file's in) when there is
    /// none. Nodes starting at once end up with the same key.
    ///
    /// # Errors
    /// [`Error::KeyStore`] when a stored key or the legacy key file cannot be used;
    /// [`Error::Store`] when the store fails.
    pub async fn open(
        config: IdentityProviderConfig,
        apps: Arc<AppDirectory>,
        store: Arc<dyn IdentityStore>,
    ) -> Result<Self, Error> {
        let mut stored = store.signing_keys().await?;
        if stored.is_empty() {
            let legacy = match &config.legacy_key_file {
                Some(path) => keys::legacy_keys(path)?,
                None => Vec::new(),
            };
            let mut offered = legacy.into_iter();
            let first = match offered.next() {
                Some(key) => key,
                None => keys::new_stored_key()?,
            };
            stored = store.add_signing_key(first, true).await?;
            for key in offered {
                stored = store.add_signing_key(key, false).await?;
            }
        }
        let keys = KeyRing::from_stored(stored)?;
        let own_tokens = JwtVerifier::new(
            vec![TrustedIssuer {
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                keys: KeySource::Shared(keys.published()),
            }],
            DEFAULT_LEEWAY,
        );
        Ok(Self {
            config,
            apps,
            keys: RwLock::new(keys),
            own_tokens,
            store,
            // One argon2 verification per core; a request waits at most a second for its turn.
            secrets: SecretGate::new(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
                Duration::from_secs(1),
            ),
        })
    }

    /// The issuer for a [`JwtVerifier`] that accepts this provider's tokens, sharing its keys
    /// (rotations are seen at once).
    pub fn trusted_issuer(&self) -> TrustedIssuer {
        let keys = self
            .keys
            .read()
            .map(|ring| ring.published())
            .unwrap_or_else(|poisoned| poisoned.into_inner().published());
        TrustedIssuer {
            issuer: self.config.issuer.clone(),
            audience: self.config.audience.clone(),
            keys: KeySource::Shared(keys),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &IdentityProviderConfig {
        &self.config
    }

    /// Adds a new signing key; tokens signed with older keys keep verifying.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn rotate_signing_key(&self) -> Result<(), Error> {
        let stored = self
            .store
            .add_signing_key(keys::new_stored_key()?, false)
            .await?;
        self.keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .replace(stored)
    }

    /// The JWKS document.
    pub fn jwks(&self) -> JwkSet {
        let ring = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let published = ring.published();
        let keys = published
            .read()
            .map(|set| set.keys.clone())
            .unwrap_or_default();
        JwkSet { keys }
    }

    /// The OpenID discovery document.
    pub fn openid_configuration(&self) -> serde_json::Value {
        let issuer = &self.config.issuer;
        serde_json::json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/oauth2/v2.0/token"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "grant_types_supported": ["client_credentials", JWT_BEARER_GRANT, "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": [SCOPE_CREATED_BY_APP, "offline_access"],
        })
    }

    /// The token endpoint, for a request from `source` (the peer's address, when known: its
    /// failed client authentications are slowed down as the client id's are).
    ///
    /// # Errors
    /// [`OAuthError`] with the RFC 6749 code for the refusal; `slow_down` (429) after
    /// repeated failed client authentications and `temporarily_unavailable` (503) when
    /// secret verification is saturated, both with `retry_after`.
    pub async fn token(
        &self,
        request: TokenRequest,
        source: Option<IpAddr>,
    ) -> Result<TokenResponse, OAuthError> {
        self.check_scope(request.scope.as_deref())?;
        match request.grant_type.as_str() {
            "client_credentials" => {
                let (client, _) = self.authenticate(&request, source).await?;
                self.sign(None, &client)
            }
            JWT_BEARER_GRANT => self.on_behalf_of(request, source).await,
            "refresh_token" => self.refresh(request, source).await,
            "" => Err(OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                "grant_type is required",
            )),
            other => Err(OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                format!("grant type {other:?} is not supported"),
            )),
        }
    }

    /// Development sign-in: a user token for `user` on `client_id`, with no password.
    ///
    /// # Errors
    /// [`OAuthErrorCode::UnauthorizedClient`] when development sign-in is off;
    /// [`OAuthErrorCode::InvalidClient`] for an unregistered client;
    /// [`OAuthErrorCode::InvalidRequest`] for an invalid user name.
    pub fn dev_sign_in(&self, client_id: &str, user: &str) -> Result<TokenResponse, OAuthError> {
        if !self.config.development_sign_in {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "development sign-in is disabled",
            ));
        }
        let client = ClientId::new(client_id)
            .ok()
            .filter(|client| self.apps.app_for_client(client).is_some())
            .ok_or_else(|| OAuthError::new(OAuthErrorCode::InvalidClient, "unknown client_id"))?;
        let user = UserId::new(user).map_err(|error| {
            OAuthError::new(OAuthErrorCode::InvalidRequest, format!("user: {error}"))
        })?;
        self.sign(Some(&user), &client)
    }

    fn check_scope(&self, scope: Option<&str>) -> Result<(), OAuthError> {
        let audience = &self.config.audience;
        let allowed = |scope: &str| {
            scope == SCOPE_CREATED_BY_APP
                || matches!(scope, "openid" | "profile" | "offline_access")
                || scope == format!("{audience}/.default")
                || scope == format!("{audience}/{SCOPE_CREATED_BY_APP}")
        };
        match scope
            .unwrap_or_default()
            .split_whitespace()
            .find(|scope| !allowed(scope))
        {
            Some(unknown) => Err(OAuthError::new(
                OAuthErrorCode::InvalidScope,
                format!("scope {unknown:?} is not available"),
            )),
            None => Ok(()),
        }
    }

    async fn authenticate(
        &self,
        request: &TokenRequest,
        source: Option<IpAddr>,
    ) -> Result<(ClientId, App), OAuthError> {
        let (Some(client_id), Some(secret)) =
            (request.client_id.clone(), request.client_secret.clone())
        else {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidClient,
                "client_id and client_secret are required",
            ));
        };
        let failed = || {
            OAuthError::new(
                OAuthErrorCode::InvalidClient,
                "client authentication failed",
            )
        };
        // Only a confidential client's own id counts failures: others would mint entries.
        let known = ClientId::new(&client_id)
            .ok()
            .filter(|client| self.apps.has_secret(client));
        if let Some(client) = &known
            && self.secrets.recognises(client, &secret)
        {
            let app = self.apps.app_for_client(client).ok_or_else(failed)?;
            return Ok((client.clone(), app));
        }
        self.secrets.admit(known.as_ref(), source)?;
        let apps = Arc::clone(&self.apps);
        let checked_secret = secret.clone();
        // argon2 is deliberately slow: the gate runs it off the async worker threads.
        let verified = self
            .secrets
            .verify(known.as_ref(), source, move || {
                apps.authenticate_client(&client_id, &checked_secret)
            })
            .await?;
        self.secrets
            .record(known.as_ref(), source, &secret, verified.is_ok());
        verified.map_err(|error| OAuthError::new(OAuthErrorCode::InvalidClient, error.to_string()))
    }

    async fn on_behalf_of(
        &self,
        request: TokenRequest,
        source: Option<IpAddr>,
    ) -> Result<TokenResponse, OAuthError> {
        if request.requested_token_use.as_deref() != Some("on_behalf_of") {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                "requested_token_use must be on_behalf_of",
            ));
        }
        let assertion = request.assertion.clone().ok_or_else(|| {
            OAuthError::new(OAuthErrorCode::InvalidRequest, "assertion is required")
        })?;
        let (client, app) = self.authenticate(&request, source).await?;
        let asserted = self
            .own_tokens
            .verify(&assertion)
            .await
            .map_err(|error| invalid_grant(format!("assertion: {error}")))?;
        let user = asserted.user.ok_or_else(|| {
            invalid_grant("assertion: an app-only token cannot be exchanged on behalf of a user")
        })?;
        if !app.client_ids.contains(&asserted.client_id) {
            return Err(invalid_grant(
                "assertion: the token was issued to a client of another app",
            ));
        }
        self.issue_with_refresh(&user, &client).await
    }

    async fn refresh(
        &self,
        request: TokenRequest,
        source: Option<IpAddr>,
    ) -> Result<TokenResponse, OAuthError> {
        let token = request.refresh_token.clone().ok_or_else(|| {
            OAuthError::new(OAuthErrorCode::InvalidRequest, "refresh_token is required")
        })?;
        let (client, _) = self.authenticate(&request, source).await?;
        let spent = self
            .store
            .spend_refresh(&token_hash(&token), &client, timestamp(SystemTime::now()))
            .await
            .map_err(unavailable)?;
        let grant = match spent {
            SpentRefresh::Granted(grant) => grant,
            SpentRefresh::AlreadyUsed => return Err(invalid_grant("refresh token already used")),
            SpentRefresh::OtherClient => {
                return Err(invalid_grant("refresh token was issued to another client"));
            }
            SpentRefresh::Expired => return Err(invalid_grant("refresh token expired")),
            SpentRefresh::Unknown => return Err(invalid_grant("unknown refresh token")),
        };
        self.issue_with_refresh(&grant.user, &grant.client).await
    }

    /// Signs a delegated access token with a rotating refresh token, whose grant is stored.
    async fn issue_with_refresh(
        &self,
        user: &UserId,
        client: &ClientId,
    ) -> Result<TokenResponse, OAuthError> {
        let mut response = self.sign(Some(user), client)?;
        let token = random_token()?;
        let grant = RefreshGrant {
            user: user.clone(),
            client: client.clone(),
            expires_at: timestamp(SystemTime::now() + self.config.refresh_token_lifetime),
        };
        self.store
            .grant_refresh(&token_hash(&token), grant)
            .await
            .map_err(unavailable)?;
        response.refresh_token = Some(token);
        Ok(response)
    }

    /// Signs an access token: delegated when `user` is given, else app-only.
    fn sign(&self, user: Option<&UserId>, client: &ClientId) -> Result<TokenResponse, OAuthError> {
        let now = SystemTime::now();
        let lifetime = self.config.access_token_lifetime;
        let claims = Claims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: user.map_or(client.as_str(), UserId::as_str).to_owned(),
            exp: unix_seconds(now + lifetime),
            nbf: Some(unix_seconds(now)),
            iat: Some(unix_seconds(now)),
            jti: Some(random_token()?),
            oid: user.map(|user| user.as_str().to_owned()),
            azp: Some(client.as_str().to_owned()),
            appid: Some(client.as_str().to_owned()),
            scp: user.map(|_| SCOPE_CREATED_BY_APP.to_owned()),
            roles: if user.is_none() {
                vec![SCOPE_CREATED_BY_APP.to_owned()]
            } else {
                Vec::new()
            },
            idtyp: if user.is_none() {
                Some("app".into())
            } else {
                Some("user".into())
            },
        };
        let access_token = {
            let ring = self
                .keys
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let key = ring
                .current()
                .ok_or_else(|| OAuthError::new(OAuthErrorCode::InvalidRequest, "no signing key"))?;
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(key.kid.clone());
            jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(|error| {
                OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    format!("signing failed: {error}"),
                )
            })?
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: lifetime.as_secs(),
            scope: SCOPE_CREATED_BY_APP.into(),
            refresh_token: None,
        })
    }
}
