//! `WebPushGateway`: RFC 8030 push with RFC 8291 encryption (`ece`) and RFC 8292 VAPID
//! (`vapid`), both on aws-lc-rs.

mod ece;
mod vapid;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use notif_core::delivery::DeliveryOutcome;
use notif_core::platform::Platform;
use notif_core::ports::PushGateway;
use notif_core::push::{KeyAlphabet, PushMessage, collapse_key};
use notif_core::subscription::PushChannel;

use crate::classify::{by_status, transport_failure};
use crate::envelope::{envelope_json, render_fitting};
use crate::error::Error;
use crate::http::{HttpConfig, client};
use vapid::Vapid;

#[cfg(feature = "sandbox")]
pub(crate) use ece::decrypt;
pub use vapid::P256Key;

/// The VAPID signature's lifetime; RFC 8292 allows at most 24 hours.
const VAPID_VALIDITY: Duration = Duration::from_secs(12 * 60 * 60);

/// A VAPID key pair and contact.
#[derive(Clone)]
pub struct WebPushConfig {
    /// The VAPID private key: the 32-byte P-256 scalar.
    pub vapid_private_key: Vec<u8>,
    /// The contact (`mailto:` or `https:`) put in the VAPID `sub` claim.
    pub subject: String,
    /// Connection settings.
    pub http: HttpConfig,
}

impl fmt::Debug for WebPushConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("WebPushConfig")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Sends browser pushes.
pub struct WebPushGateway {
    client: reqwest::Client,
    vapid: Vapid,
    public_key: Vec<u8>,
}

impl fmt::Debug for WebPushGateway {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("WebPushGateway")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl WebPushGateway {
    /// A gateway for `config`.
    ///
    /// # Errors
    /// [`Error::InvalidCredential`] for a key that is not a P-256 scalar; [`Error::Client`].
    pub fn new(config: WebPushConfig) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidCredential {
            what: "VAPID",
            reason,
        };
        let key = P256Key::from_private_key(&config.vapid_private_key).map_err(invalid)?;
        Ok(Self {
            client: client(&config.http)?,
            vapid: Vapid::new(&key, config.subject).map_err(invalid)?,
            public_key: key.public_key,
        })
    }

    /// A new random VAPID private key (32 bytes), for configuration and development.
    pub fn generate_vapid_key() -> Vec<u8> {
        P256Key::generate().private_key
    }

    /// The VAPID public key (uncompressed point), which browsers pass as `applicationServerKey`.
    pub fn vapid_public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn request(&self, push: &PushMessage) -> Result<reqwest::RequestBuilder, String> {
        let PushChannel::WebPush {
            endpoint,
            p256dh,
            auth,
        } = &push.subscription.channel
        else {
            return Err("not a Web Push subscription".into());
        };
        let endpoint =
            url::Url::parse(endpoint.as_str()).map_err(|error| format!("endpoint: {error}"))?;
        // Web Push is always a background push: its shoulder tap always fits.
        let fitted = render_fitting(Platform::WebPush, push, |envelope, _| {
            serde_json::to_vec(&envelope_json(envelope)).unwrap_or_default()
        });
        let body = ece::encrypt(&fitted.body, p256dh, auth).map_err(|error| error.to_string())?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let authorization = self
            .vapid
            .authorization(&endpoint, now + VAPID_VALIDITY.as_secs())?;
        let mut request = self
            .client
            .post(endpoint)
            .header("authorization", authorization)
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            // The time left until the notification expires: the push service drops it after.
            .header("ttl", push.time_to_live.as_secs())
            .header("urgency", push.urgency.web_push_urgency());
        let topic = collapse_key(&push.collapse, 32, KeyAlphabet::Base64Url);
        if !topic.is_empty() {
            request = request.header("topic", topic);
        }
        Ok(request.body(body))
    }
}

#[async_trait]
impl PushGateway for WebPushGateway {
    fn platform(&self) -> Platform {
        Platform::WebPush
    }

    async fn send(&self, push: &PushMessage) -> DeliveryOutcome {
        let request = match self.request(push) {
            Ok(request) => request,
            Err(reason) => return DeliveryOutcome::Rejected { reason },
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return transport_failure(&error),
        };
        let status = response.status();
        match status.as_u16() {
            404 | 410 => DeliveryOutcome::EndpointGone,
            _ => {
                let headers = response.headers().clone();
                let reason = response.text().await.unwrap_or_default();
                by_status(status, &headers, reason.trim())
            }
        }
    }
}
