//! `ApnsGateway`: Apple Push Notification service over HTTP/2 with a reused ES256 provider token.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use notif_core::delivery::DeliveryOutcome;
use notif_core::platform::Platform;
use notif_core::ports::PushGateway;
use notif_core::push::{KeyAlphabet, PushKind, PushMessage, collapse_key};
use notif_core::subscription::{ApnsEnvironment, PushChannel};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use crate::classify::{by_status, noting_shortened, transport_failure, with_credential_refresh};
use crate::envelope::{envelope_json, render_fitting};
use crate::error::Error;
use crate::http::{HttpConfig, client};

/// Apple's production endpoint.
pub const APNS_PRODUCTION: &str = "https://api.push.apple.com";
/// Apple's sandbox endpoint.
pub const APNS_SANDBOX: &str = "https://api.sandbox.push.apple.com";

/// Provider tokens are reused for 40 minutes: Apple refuses refreshes more often than every
/// 20 minutes and tokens older than 60.
const TOKEN_REUSE: Duration = Duration::from_secs(40 * 60);

/// An APNs token-based credential and where to send.
#[derive(Clone)]
pub struct ApnsConfig {
    /// The 10-character Team ID (`iss`).
    pub team_id: String,
    /// The 10-character Key ID (`kid`).
    pub key_id: String,
    /// The `.p8` signing key (PKCS#8 PEM).
    pub private_key_pem: String,
    /// Base URL for production device tokens.
    pub production_url: String,
    /// Base URL for sandbox device tokens.
    pub sandbox_url: String,
    /// Connection settings (HTTP/2 only).
    pub http: HttpConfig,
}

impl fmt::Debug for ApnsConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ApnsConfig")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("production_url", &self.production_url)
            .field("sandbox_url", &self.sandbox_url)
            .finish_non_exhaustive()
    }
}

/// Sends iOS pushes.
pub struct ApnsGateway {
    client: reqwest::Client,
    config: ApnsConfig,
    key: EncodingKey,
    token: Mutex<Option<(String, Instant)>>,
}

impl fmt::Debug for ApnsGateway {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ApnsGateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ApnsError {
    #[serde(default)]
    reason: String,
}

impl ApnsGateway {
    /// A gateway for `config`.
    ///
    /// # Errors
    /// [`Error::InvalidCredential`] for a key that is not an EC PKCS#8 PEM;
    /// [`Error::Client`] when the HTTP client cannot be built.
    pub fn new(config: ApnsConfig) -> Result<Self, Error> {
        let key = EncodingKey::from_ec_pem(config.private_key_pem.as_bytes()).map_err(|error| {
            Error::InvalidCredential {
                what: "APNs",
                reason: error.to_string(),
            }
        })?;
        Ok(Self {
            client: client(&config.http)?,
            config,
            key,
            token: Mutex::new(None),
        })
    }

    async fn provider_token(&self, refresh: bool) -> Result<String, jsonwebtoken::errors::Error> {
        let mut cached = self.token.lock().await;
        if let Some((token, issued)) = cached.as_ref()
            && !refresh
            && issued.elapsed() < TOKEN_REUSE
        {
            return Ok(token.clone());
        }
        let issued_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.config.key_id.clone());
        let claims = json!({"iss": self.config.team_id, "iat": issued_at});
        let token = jsonwebtoken::encode(&header, &claims, &self.key)?;
        *cached = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    async fn send_once(&self, push: &PushMessage, refresh: bool) -> DeliveryOutcome {
        let PushChannel::Apns {
            device_token,
            topic,
            environment,
        } = &push.subscription.channel
        else {
            return DeliveryOutcome::Rejected {
                reason: "not an APNs subscription".into(),
            };
        };
        let token = match self.provider_token(refresh).await {
            Ok(token) => token,
            Err(error) => {
                return DeliveryOutcome::Rejected {
                    reason: format!("signing the provider token failed: {error}"),
                };
            }
        };
        let base = match environment {
            ApnsEnvironment::Production => &self.config.production_url,
            ApnsEnvironment::Sandbox => &self.config.sandbox_url,
        };
        let fitted = render_fitting(Platform::Ios, push, |envelope, kind| {
            let mut aps = match kind {
                PushKind::Alert { title, body } => {
                    // Apple types every alert key as a string: an absent body is left out,
                    // never sent as null.
                    let mut alert = json!({"title": title});
                    if let Some(body) = body {
                        alert["body"] = json!(body);
                    }
                    json!({"alert": alert})
                }
                PushKind::Background => json!({"content-available": 1}),
            };
            if let Some(group) = &push.group {
                aps["thread-id"] = json!(group);
            }
            serde_json::to_vec(&json!({"aps": aps, "notif": envelope_json(envelope)}))
                .unwrap_or_default()
        });
        let response = self
            .client
            .post(format!("{base}/3/device/{device_token}"))
            .header("authorization", format!("bearer {token}"))
            .header("apns-topic", topic)
            .header("apns-push-type", push.kind.apns_push_type())
            .header("apns-priority", push.kind.apns_priority().to_string())
            .header(
                "apns-expiration",
                push.expires_at.unix_seconds().max(0).to_string(),
            )
            .header(
                "apns-collapse-id",
                collapse_key(&push.collapse, 64, KeyAlphabet::PrintableAscii),
            )
            .header("content-type", "application/json")
            .body(fitted.body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => return transport_failure(&error),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let reason = response
            .json::<ApnsError>()
            .await
            .map(|error| error.reason)
            .unwrap_or_default();
        let outcome = classify(status.as_u16(), &reason)
            .unwrap_or_else(|| by_status(status, &headers, &reason));
        noting_shortened(outcome, fitted.text_shortened)
    }
}

/// APNs' own rules before the shared status families.
fn classify(status: u16, reason: &str) -> Option<DeliveryOutcome> {
    match (status, reason) {
        (410, _) | (400, "BadDeviceToken") => Some(DeliveryOutcome::EndpointGone),
        (403, "ExpiredProviderToken") => Some(DeliveryOutcome::RefreshCredentials),
        _ => None,
    }
}

#[async_trait]
impl PushGateway for ApnsGateway {
    fn platform(&self) -> Platform {
        Platform::Ios
    }

    async fn send(&self, push: &PushMessage) -> DeliveryOutcome {
        with_credential_refresh(|refresh| self.send_once(push, refresh)).await
    }
}
