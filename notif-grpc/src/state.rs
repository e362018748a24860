//! `ServerState`: what every handler shares — the use cases, token verification, rate limits,
//! metrics, the store's operations and the feed events streams follow.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use notif_auth::IdentityProvider;
use notif_core::app::{Action, Principal};
use notif_core::ports::{AppRegistry, FeedEvents, StoreAdmin, TokenVerifier};
use notif_core::service::{Caller, NotifService};
use notif_delivery::sandbox::SandboxProviders;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;

/// Shared by every handler.
pub(crate) struct ServerState {
    pub(crate) service: NotifService,
    /// The store's operations: health, queue depth, write latency.
    pub(crate) store: Arc<dyn StoreAdmin>,
    pub(crate) verifier: Arc<dyn TokenVerifier>,
    pub(crate) apps: Arc<dyn AppRegistry>,
    pub(crate) identity: Option<Arc<IdentityProvider>>,
    pub(crate) limiter: RateLimiter,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) sandbox: Option<Arc<SandboxProviders>>,
    /// Where links in answers point (`Location`, `@odata` links).
    pub(crate) links: crate::http::Links,
    /// Largest HTTP request body, compressed or inflated.
    pub(crate) max_body_bytes: usize,
    /// What writes announce: `WatchChanges` streams wait on their feed's.
    pub(crate) events: Arc<dyn FeedEvents>,
    /// Turns true when the server shuts down, ending streams.
    pub(crate) shutting_down: watch::Receiver<bool>,
    /// The live change streams each user holds open.
    pub(crate) streams: Arc<crate::follow::StreamSlots>,
}

impl fmt::Debug for ServerState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ServerState")
            .field("links", &self.links)
            .finish_non_exhaustive()
    }
}

/// A verified caller.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub(crate) principal: Principal,
    pub(crate) subscription_id: Option<String>,
}

impl Authenticated {
    pub(crate) fn caller(&self) -> Caller<'_> {
        Caller {
            principal: &self.principal,
            subscription_id: self.subscription_id.as_deref(),
        }
    }
}

impl ServerState {
    /// Verifies the `authorization` header value and applies the rate limits.
    pub(crate) async fn authenticate(
        &self,
        authorization: Option<&str>,
        subscription_id: Option<String>,
    ) -> Result<Authenticated, ApiError> {
        let header = authorization
            .ok_or_else(|| ApiError::MissingToken("a Bearer token is required".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::MissingToken("authorization must be a Bearer token".into()))?;
        let principal = self.verifier.verify(token).await?;
        let subscription_id = subscription_id.filter(|id| !id.trim().is_empty());
        let authenticated = Authenticated {
            principal,
            subscription_id,
        };
        // An unknown client is refused by the authorization rule; it has no bucket to spend.
        if let Some(app) = self.apps.app_for_client(&authenticated.principal.client_id) {
            let user = self.resolved_user(&authenticated).await;
            self.limiter
                .admit(app.id.as_str(), user.as_deref())
                .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
        }
        Ok(authenticated)
    }

    /// The user the caller acts for, for its rate limit: the token's user, or the user of the
    /// subscription an app-only caller names (however the id is spelled). `None` when it
    /// names none that resolves: the request then fails in its use case, having spent only
    /// its app's tokens.
    async fn resolved_user(&self, caller: &Authenticated) -> Option<String> {
        if let Some(user) = &caller.principal.user {
            return Some(user.as_str().to_owned());
        }
        caller.subscription_id.as_ref()?;
        let (feed, _) = self
            .service
            .authorize(caller.caller(), Action::UseFeed)
            .await
            .ok()?;
        Some(feed.user.as_str().to_owned())
    }

    /// Records a finished request.
    pub(crate) fn observe<T>(&self, method: &str, started: Instant, result: &Result<T, ApiError>) {
        let code = match result {
            Ok(_) => tonic::Code::Ok,
            Err(error) => error.code(),
        };
        let code = format!("{code:?}");
        self.metrics.request(method, &code, started.elapsed());
    }
}
