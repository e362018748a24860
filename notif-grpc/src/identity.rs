//! Who may call: the embedded identity provider (when enabled) and the token verifier that
//! trusts it and the configured external issuers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use notif_auth::{
    AppDirectory, IdentityProvider, IdentityProviderConfig, JwtVerifier, KeySource, RemoteJwks,
    TrustedIssuer,
};

use notif_core::ports::IdentityStore;

use crate::config::Config;

/// The identity side of a server.
pub(crate) struct Identity {
    /// The embedded provider, when enabled.
    pub(crate) provider: Option<Arc<IdentityProvider>>,
    /// Verifies every bearer token.
    pub(crate) verifier: Arc<JwtVerifier>,
}

/// The embedded provider (issuing as `public_url`, its keys and refresh grants in `store`,
/// shared by every node) and a verifier for it and every configured issuer.
///
/// # Errors
/// When the provider's keys cannot be loaded, or no issuer is left to trust.
pub(crate) async fn identity(
    config: &Config,
    apps: &Arc<AppDirectory>,
    store: Arc<dyn IdentityStore>,
    public_url: &str,
    development: bool,
) -> anyhow::Result<Identity> {
    let provider = if config.identity.embedded {
        let provider = IdentityProvider::open(
            IdentityProviderConfig {
                issuer: public_url.to_owned(),
                audience: config.identity.audience.clone(),
                access_token_lifetime: Duration::from_secs(
                    config.identity.access_token_minutes * 60,
                ),
                refresh_token_lifetime: Duration::from_secs(
                    config.identity.refresh_token_days * 86_400,
                ),
                // Anyone could sign in as anyone: development only.
                development_sign_in: development,
                legacy_key_file: Some(config.data_dir.join("idp-keys.json")),
            },
            Arc::clone(apps),
            store,
        )
        .await?;
        Some(Arc::new(provider))
    } else {
        None
    };
    let mut issuers: Vec<TrustedIssuer> = provider
        .iter()
        .map(|provider| provider.trusted_issuer())
        .collect();
    let jwks_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the JWKS client")?;
    for issuer in &config.identity.issuers {
        issuers.push(TrustedIssuer {
            issuer: issuer.issuer.clone(),
            audience: issuer
                .audience
                .clone()
                .unwrap_or_else(|| config.identity.audience.clone()),
            keys: KeySource::Remote(RemoteJwks::new(
                issuer.jwks_url.clone(),
                jwks_client.clone(),
                Duration::from_secs(config.identity.jwks_refresh_seconds),
            )),
        });
    }
    if issuers.is_empty() {
        bail!(
            "no token issuer: enable the embedded identity provider or configure identity.issuers"
        );
    }
    let verifier = Arc::new(JwtVerifier::new(
        issuers,
        Duration::from_secs(config.identity.leeway_seconds),
    ));
    Ok(Identity { provider, verifier })
}
