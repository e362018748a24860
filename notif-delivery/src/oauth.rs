//! Cached OAuth access tokens for providers that use them (FCM, WNS): fetched once, reused
//! until shortly before they expire, refreshed on demand when the provider says they expired.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

/// A cached access token.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    cached: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Why a token could not be fetched.
#[derive(Debug, thiserror::Error)]
#[error("token endpoint: {0}")]
pub(crate) struct TokenFetchError(String);

impl TokenCache {
    /// The cached token, or a new one from `url` with the form `make_form` builds when there is
    /// none, it is about to expire, or `refresh` is asked. The form is built only when a token
    /// is fetched (FCM's is a signed assertion: too costly per push). One lock: concurrent sends
    /// wait for a single fetch.
    pub(crate) async fn token(
        &self,
        client: &reqwest::Client,
        url: &str,
        make_form: impl FnOnce() -> Result<Vec<(&'static str, String)>, String>,
        refresh: bool,
    ) -> Result<String, TokenFetchError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref()
            && !refresh
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let form = make_form().map_err(TokenFetchError)?;
        let response = client
            .post(url)
            .form(&form)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| TokenFetchError(error.to_string()))?
            .json::<TokenResponse>()
            .await
            .map_err(|error| TokenFetchError(error.to_string()))?;
        let lifetime = Duration::from_secs(response.expires_in.unwrap_or(3_600));
        // Refresh a little early (a tenth of the lifetime, at most five minutes), so no push
        // goes out with a token that expires in flight.
        let margin = (lifetime / 10).min(Duration::from_secs(300));
        *cached = Some((
            response.access_token.clone(),
            Instant::now() + lifetime - margin,
        ));
        Ok(response.access_token)
    }
}
