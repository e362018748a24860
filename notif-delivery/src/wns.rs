//! `WnsGateway`: Windows Push Notification Services with a cached client-credentials token.

use std::fmt;

use async_trait::async_trait;
use notif_core::delivery::DeliveryOutcome;
use notif_core::platform::Platform;
use notif_core::ports::PushGateway;
use notif_core::push::{KeyAlphabet, PushKind, PushMessage, collapse_key};
use notif_core::subscription::PushChannel;

use crate::classify::{
    by_status, noting_shortened, retry_after, transport_failure, with_credential_refresh,
};
use crate::envelope::{envelope_json, render_fitting};
use crate::error::Error;
use crate::http::{HttpConfig, client};
use crate::oauth::TokenCache;

/// The Store/UWP token endpoint.
pub const WNS_TOKEN_URL: &str = "https://login.live.com/accesstoken.srf";

/// A WNS credential.
#[derive(Clone)]
pub struct WnsConfig {
    /// The Package SID (or app registration) client id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The token endpoint.
    pub token_url: String,
    /// The token scope (`notify.windows.com`).
    pub scope: String,
    /// Connection settings.
    pub http: HttpConfig,
}

impl fmt::Debug for WnsConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("WnsConfig")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Sends Windows pushes.
pub struct WnsGateway {
    client: reqwest::Client,
    config: WnsConfig,
    token: TokenCache,
}

impl fmt::Debug for WnsGateway {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("WnsGateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Escapes text for XML content and attribute values. Line breaks and tabs become character
/// references (attribute values would otherwise turn them into spaces); other control
/// characters, which XML 1.0 cannot carry at all, become U+FFFD.
fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\n' => escaped.push_str("&#10;"),
            '\r' => escaped.push_str("&#13;"),
            '\t' => escaped.push_str("&#9;"),
            other if is_xml_char(other) => escaped.push(other),
            _ => escaped.push(char::REPLACEMENT_CHARACTER),
        }
    }
    escaped
}

/// XML 1.0 §2.2 `Char`, less the whitespace controls handled above.
fn is_xml_char(character: char) -> bool {
    matches!(character, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The toast XML: title and body as text, the envelope in `launch` for the app.
fn toast_xml(title: &str, body: Option<&str>, launch: &str) -> String {
    let body = body.map_or(String::new(), |body| {
        format!("<text>{}</text>", xml_escape(body))
    });
    format!(
        "<toast launch=\"{}\"><visual><binding template=\"ToastGeneric\"><text>{}</text>{body}</binding></visual></toast>",
        xml_escape(launch),
        xml_escape(title),
    )
}

impl WnsGateway {
    /// A gateway for `config`.
    ///
    /// # Errors
    /// [`Error::Client`] when the HTTP client cannot be built.
    pub fn new(config: WnsConfig) -> Result<Self, Error> {
        Ok(Self {
            client: client(&config.http)?,
            config,
            token: TokenCache::default(),
        })
    }

    async fn send_once(&self, push: &PushMessage, refresh: bool) -> DeliveryOutcome {
        let PushChannel::Wns { channel_uri } = &push.subscription.channel else {
            return DeliveryOutcome::Rejected {
                reason: "not a WNS subscription".into(),
            };
        };
        let form = || {
            Ok(vec![
                ("grant_type", "client_credentials".to_owned()),
                ("client_id", self.config.client_id.clone()),
                ("client_secret", self.config.client_secret.clone()),
                ("scope", self.config.scope.clone()),
            ])
        };
        let access_token = match self
            .token
            .token(&self.client, &self.config.token_url, form, refresh)
            .await
        {
            Ok(token) => token,
            Err(_) => return DeliveryOutcome::Retry { after: None },
        };
        let (wns_type, content_type) = match push.kind {
            PushKind::Alert { .. } => ("wns/toast", "text/xml"),
            PushKind::Background => ("wns/raw", "application/octet-stream"),
        };
        let fitted = render_fitting(Platform::Windows, push, |envelope, kind| {
            let envelope = envelope_json(envelope).to_string();
            match kind {
                PushKind::Alert { title, body } => {
                    toast_xml(title, body.as_deref(), &envelope).into_bytes()
                }
                PushKind::Background => envelope.into_bytes(),
            }
        });
        let mut request = self
            .client
            .post(channel_uri.as_str())
            .bearer_auth(access_token)
            .header("content-type", content_type)
            .header("x-wns-type", wns_type)
            .header(
                "x-wns-tag",
                collapse_key(&push.collapse, 16, KeyAlphabet::Alphanumeric),
            )
            .header("x-wns-ttl", push.time_to_live.as_secs().to_string())
            .header("x-wns-priority", push.urgency.wns_priority().to_string());
        if let Some(group) = &push.group {
            request = request.header(
                "x-wns-group",
                collapse_key(group, 16, KeyAlphabet::Alphanumeric),
            );
        }
        let response = match request.body(fitted.body).send().await {
            Ok(response) => response,
            Err(error) => return transport_failure(&error),
        };
        let status = response.status();
        let headers = response.headers();
        let reason = headers
            .get("x-wns-error-description")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let outcome = match status.as_u16() {
            404 | 410 => DeliveryOutcome::EndpointGone,
            401 => DeliveryOutcome::RefreshCredentials,
            // 406 is WNS' throttling answer.
            406 => DeliveryOutcome::Retry {
                after: retry_after(headers, "x-wns-continue-after"),
            },
            _ => by_status(status, headers, reason),
        };
        noting_shortened(outcome, fitted.text_shortened)
    }
}

#[async_trait]
impl PushGateway for WnsGateway {
    fn platform(&self) -> Platform {
        Platform::Windows
    }

    async fn send(&self, push: &PushMessage) -> DeliveryOutcome {
        with_credential_refresh(|refresh| self.send_once(push, refresh)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toast_text_is_escaped() {
        let xml = toast_xml("<b>Tom & \"Jerry\"</b>", Some("it's"), r#"{"a":"<x>"}"#);
        assert!(xml.contains("<text>&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt;</text>"));
        assert!(xml.contains("<text>it&apos;s</text>"));
        assert!(xml.contains(r#"launch="{&quot;a&quot;:&quot;&lt;x&gt;&quot;}""#));
    }
}
