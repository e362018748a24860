//! Where an issuer's signing keys come from: a JWKS URL fetched and cached (refreshed on an
//! unknown `kid`, at most once per interval), or keys shared in-process with the embedded
//! identity provider.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use notif_core::ports::TokenError;
use tokio::sync::Mutex;

/// Keys shared with an in-process issuer; it replaces them on rotation.
pub type SharedKeys = Arc<RwLock<JwkSet>>;

/// The source of one issuer's keys.
pub enum KeySource {
    /// A JWKS document fetched over HTTP(S).
    Remote(RemoteJwks),
    /// Keys held in this process (the embedded identity provider).
    Shared(SharedKeys),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Remote(remote) => formatter.debug_tuple("Remote").field(remote).finish(),
            KeySource::Shared(_) => formatter.write_str("Shared"),
        }
    }
}

impl KeySource {
    /// The key with id `kid`, fetching the issuer's keys when it is not known yet.
    ///
    /// # Errors
    /// [`TokenError::UnknownKey`] when no such key exists (after at most one fetch per
    /// refresh interval); [`TokenError::Unavailable`] when the first fetch fails.
    pub async fn key(&self, kid: &str) -> Result<Jwk, TokenError> {
        match self {
            KeySource::Shared(keys) => keys
                .read()
                .map_err(|_| TokenError::Unavailable("key store lock poisoned".into()))?
                .find(kid)
                .cloned()
                .ok_or_else(|| TokenError::UnknownKey(kid.to_owned())),
            KeySource::Remote(remote) => remote.key(kid).await,
        }
    }
}

/// A JWKS URL with its cache.
#[derive(Debug)]
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    min_refresh_interval: Duration,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    keys: Option<JwkSet>,
    last_fetch: Option<Instant>,
}

impl RemoteJwks {
    /// A cache of the JWKS at `url`, refetched on an unknown `kid` at most once per
    /// `min_refresh_interval`, so a flood of tokens with made-up key ids cannot hammer the issuer.
    pub fn new(
        url: impl Into<String>,
        client: reqwest::Client,
        min_refresh_interval: Duration,
    ) -> Self {
        Self {
            url: url.into(),
            client,
            min_refresh_interval,
            state: Mutex::new(CacheState::default()),
        }
    }

    async fn key(&self, kid: &str) -> Result<Jwk, TokenError> {
        // One lock around lookup and refresh: concurrent requests with a new kid wait for a
        // single fetch instead of each starting one.
        let mut state = self.state.lock().await;
        if let Some(key) = state.keys.as_ref().and_then(|keys| keys.find(kid)) {
            return Ok(key.clone());
        }
        let may_fetch = state
            .last_fetch
            .is_none_or(|last| last.elapsed() >= self.min_refresh_interval);
        if !may_fetch {
            return Err(TokenError::UnknownKey(kid.to_owned()));
        }
        state.last_fetch = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => state.keys = Some(keys),
            // With keys cached, a failed refresh only means this kid stays unknown.
            Err(error) if state.keys.is_none() => return Err(error),
            Err(_) => {}
        }
        state
            .keys
            .as_ref()
            .and_then(|keys| keys.find(kid))
            .cloned()
            .ok_or_else(|| TokenError::UnknownKey(kid.to_owned()))
    }

    async fn fetch(&self) -> Result<JwkSet, TokenError> {
        let unavailable = |error: reqwest::Error| {
            TokenError::Unavailable(format!("fetching {}: {error}", self.url))
        };
        self.client
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json::<JwkSet>()
            .await
            .map_err(unavailable)
    }
}
