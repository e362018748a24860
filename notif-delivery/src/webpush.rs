//! `WebPushGateway`: RFC 8030 push with RFC 8291 encryption and RFC 8292 VAPID, through
//! web-push-native (no hand-rolled cryptography).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use notif_core::delivery::DeliveryOutcome;
use notif_core::platform::Platform;
use notif_core::ports::PushGateway;
use notif_core::push::{KeyAlphabet, PushMessage, collapse_key};
use notif_core::subscription::PushChannel;
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike as _, ES256KeyPair};
use web_push_native::p256::PublicKey;
use web_push_native::{Auth, WebPushBuilder};

use crate::classify::{by_status, transport_failure};
use crate::envelope::{envelope_json, render_fitting};
use crate::error::Error;
use crate::http::{HttpConfig, client};

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
    vapid: ES256KeyPair,
    subject: String,
}

impl fmt::Debug for WebPushGateway {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("WebPushGateway")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl WebPushGateway {
    /// A gateway for `config`.
    ///
    /// # Errors
    /// [`Error::InvalidCredential`] for a key that is not a P-256 scalar; [`Error::Client`].
    pub fn new(config: WebPushConfig) -> Result<Self, Error> {
        let vapid = ES256KeyPair::from_bytes(&config.vapid_private_key).map_err(|error| {
            Error::InvalidCredential {
                what: "VAPID",
                reason: error.to_string(),
            }
        })?;
        Ok(Self {
            client: client(&config.http)?,
            vapid,
            subject: config.subject,
        })
    }

    /// A new random VAPID private key (32 bytes), for configuration and development.
    pub fn generate_vapid_key() -> Vec<u8> {
        ES256KeyPair::generate().to_bytes()
    }

    /// The VAPID public key (uncompressed point), which browsers pass as `applicationServerKey`.
    pub fn vapid_public_key(&self) -> Vec<u8> {
        self.vapid.public_key().public_key().to_bytes_uncompressed()
    }

    fn request(&self, push: &PushMessage) -> Result<reqwest::Request, String> {
        let PushChannel::WebPush {
            endpoint,
            p256dh,
            auth,
        } = &push.subscription.channel
        else {
            return Err("not a Web Push subscription".into());
        };
        let endpoint = endpoint
            .as_str()
            .parse::<http::Uri>()
            .map_err(|error| format!("endpoint: {error}"))?;
        let public_key =
            PublicKey::from_sec1_bytes(p256dh).map_err(|error| format!("p256dh: {error}"))?;
        if auth.len() != 16 {
            return Err("auth must be 16 bytes".into());
        }
        let builder = WebPushBuilder::new(endpoint, public_key, Auth::clone_from_slice(auth))
            .with_valid_duration(VAPID_VALIDITY)
            .with_vapid(&self.vapid, &self.subject);
        let body = render_fitting(Platform::WebPush, &push.envelope, |envelope| {
            serde_json::to_vec(&envelope_json(envelope)).unwrap_or_default()
        });
        let mut request = builder
            .build(body)
            .map_err(|error| format!("encryption: {error}"))?;
        let headers = request.headers_mut();
        // The builder's TTL is the VAPID validity; the push's TTL is the time left until the
        // notification expires.
        headers.insert("ttl", http::HeaderValue::from(push.time_to_live.as_secs()));
        headers.insert(
            "urgency",
            http::HeaderValue::from_static(push.urgency.web_push_urgency()),
        );
        let topic = collapse_key(&push.collapse, 32, KeyAlphabet::Base64Url);
        if let Ok(topic) = http::HeaderValue::from_str(&topic) {
            headers.insert("topic", topic);
        }
        reqwest::Request::try_from(request).map_err(|error| error.to_string())
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
        let response = match self.client.execute(request).await {
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
