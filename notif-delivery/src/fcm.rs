//! `FcmGateway`: Firebase Cloud Messaging HTTP v1 with a cached service-account OAuth token.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use notif_core::delivery::DeliveryOutcome;
use notif_core::platform::Platform;
use notif_core::ports::PushGateway;
use notif_core::push::{KeyAlphabet, PushKind, PushMessage, collapse_key};
use notif_core::subscription::PushChannel;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::classify::{by_status, noting_shortened, transport_failure, with_credential_refresh};
use crate::envelope::{envelope_json, render_fitting};
use crate::error::Error;
use crate::http::{HttpConfig, client};
use crate::oauth::TokenCache;

/// Google's FCM endpoint.
pub const FCM_URL: &str = "https://fcm.googleapis.com";
/// Google's OAuth token endpoint.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// An FCM service account and where to send.
#[derive(Clone)]
pub struct FcmConfig {
    /// The Firebase project.
    pub project_id: String,
    /// The service account's `client_email`.
    pub client_email: String,
    /// The service account's `private_key_id`.
    pub private_key_id: String,
    /// The service account's RSA `private_key` (PKCS#8 PEM).
    pub private_key_pem: String,
    /// The OAuth token endpoint (`token_uri`).
    pub token_url: String,
    /// The FCM base URL.
    pub base_url: String,
    /// Connection settings.
    pub http: HttpConfig,
}

impl fmt::Debug for FcmConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("FcmConfig")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("token_url", &self.token_url)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Sends Android pushes.
pub struct FcmGateway {
    client: reqwest::Client,
    config: FcmConfig,
    key: EncodingKey,
    token: TokenCache,
}

impl fmt::Debug for FcmGateway {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("FcmGateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize, Default)]
struct FcmErrorBody {
    #[serde(default)]
    error: FcmError,
}

#[derive(Deserialize, Default)]
struct FcmError {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<Value>,
}

impl FcmError {
    /// The FCM error code from the details (`UNREGISTERED`, `SENDER_ID_MISMATCH`, …), else the status.
    fn code(&self) -> &str {
        self.details
            .iter()
            .find_map(|detail| detail.get("errorCode").and_then(Value::as_str))
            .unwrap_or(&self.status)
    }
}

impl FcmGateway {
    /// A gateway for `config`.
    ///
    /// # Errors
    /// [`Error::InvalidCredential`] for a key that is not an RSA PEM; [`Error::Client`].
    pub fn new(config: FcmConfig) -> Result<Self, Error> {
        let key =
            EncodingKey::from_rsa_pem(config.private_key_pem.as_bytes()).map_err(|error| {
                Error::InvalidCredential {
                    what: "FCM service account",
                    reason: error.to_string(),
                }
            })?;
        Ok(Self {
            client: client(&config.http)?,
            config,
            key,
            token: TokenCache::default(),
        })
    }

    fn assertion(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.config.private_key_id.clone());
        let claims = json!({
            "iss": self.config.client_email,
            "scope": FCM_SCOPE,
            // Google's server-to-server OAuth document fixes the audience to its token
            // endpoint, whatever `token_uri` the request itself goes to.
            "aud": GOOGLE_TOKEN_URL,
            "iat": now,
            "exp": now + 3_600,
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
    }

    async fn send_once(&self, push: &PushMessage, refresh: bool) -> DeliveryOutcome {
        let PushChannel::Fcm { registration_token } = &push.subscription.channel else {
            return DeliveryOutcome::Rejected {
                reason: "not an FCM subscription".into(),
            };
        };
        let form = || {
            let assertion = self.assertion().map_err(|error| {
                format!("signing the service-account assertion failed: {error}")
            })?;
            Ok(vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                ),
                ("assertion", assertion),
            ])
        };
        let access_token = match self
            .token
            .token(&self.client, &self.config.token_url, form, refresh)
            .await
        {
            Ok(token) => token,
            // The token endpoint is down: nothing is wrong with the push, try later.
            Err(_) => return DeliveryOutcome::Retry { after: None },
        };
        let collapse = collapse_key(&push.collapse, 64, KeyAlphabet::PrintableAscii);
        let fitted = render_fitting(Platform::Android, push, |envelope, kind| {
            let mut android = json!({
                "priority": push.urgency.fcm_priority(),
                "ttl": format!("{}s", push.time_to_live.as_secs()),
                "collapse_key": collapse,
            });
            let mut message = json!({
                "token": registration_token,
                "data": {"notif": envelope_json(envelope).to_string()},
            });
            if let PushKind::Alert { title, body } = kind {
                let mut notification = json!({"title": title});
                if let Some(body) = body {
                    notification["body"] = json!(body);
                }
                message["notification"] = notification;
                android["notification"] = json!({"tag": collapse});
            }
            message["android"] = android;
            serde_json::to_vec(&json!({"message": message})).unwrap_or_default()
        });
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.config.base_url, self.config.project_id
        );
        let response = match self
            .client
            .post(url)
            .bearer_auth(access_token)
            .header("content-type", "application/json")
            .body(fitted.body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => return transport_failure(&error),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let error = response
            .json::<FcmErrorBody>()
            .await
            .unwrap_or_default()
            .error;
        let outcome = classify(status.as_u16(), error.code()).unwrap_or_else(|| {
            by_status(
                status,
                &headers,
                &format!("{} {}", error.code(), error.message),
            )
        });
        noting_shortened(outcome, fitted.text_shortened)
    }
}

/// FCM's own rules before the shared status families.
fn classify(status: u16, code: &str) -> Option<DeliveryOutcome> {
    match (status, code) {
        (404, _) | (_, "UNREGISTERED") | (403, "SENDER_ID_MISMATCH") => {
            Some(DeliveryOutcome::EndpointGone)
        }
        (401, "THIRD_PARTY_AUTH_ERROR") => None,
        (401, _) => Some(DeliveryOutcome::RefreshCredentials),
        _ => None,
    }
}

#[async_trait]
impl PushGateway for FcmGateway {
    fn platform(&self) -> Platform {
        Platform::Android
    }

    async fn send(&self, push: &PushMessage) -> DeliveryOutcome {
        with_credential_refresh(|refresh| self.send_once(push, refresh)).await
    }
}
