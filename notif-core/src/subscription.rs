//! Device subscriptions: push channels per platform, their validation (including SSRF rules),
//! and the channel identity that makes subscribing again renew instead of duplicate.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use url::{Host, Url};

use crate::ids::{ClientId, SubscriptionId};
use crate::notification::FeedKey;
use crate::platform::Platform;
use crate::time::Timestamp;
use crate::validation::{ValidationErrors, Violations};

/// APNs environment of a device token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApnsEnvironment {
    /// `api.push.apple.com`.
    Production,
    /// `api.sandbox.push.apple.com`.
    Sandbox,
}

/// A URL the server will fetch, already checked against the platform's allow-list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelUrl(Url);

impl ChannelUrl {
    /// The URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The URL text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Wraps a URL read back from storage, where it was validated when first stored.
    pub fn from_trusted(url: Url) -> Self {
        Self(url)
    }
}

/// Where and how a device receives pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushChannel {
    /// Windows: a WNS channel URI.
    Wns {
        /// The channel URI (`https://*.notify.windows.com/...`).
        channel_uri: ChannelUrl,
    },
    /// Android: an FCM registration token.
    Fcm {
        /// The registration token.
        registration_token: String,
    },
    /// iOS: an APNs device token.
    Apns {
        /// The device token, lower-case hex.
        device_token: String,
        /// The app's bundle id (`apns-topic`).
        topic: String,
        /// Production or sandbox.
        environment: ApnsEnvironment,
    },
    /// A browser: a Web Push subscription.
    WebPush {
        /// The push service endpoint.
        endpoint: ChannelUrl,
        /// The client's P-256 public key, uncompressed (65 bytes).
        p256dh: Vec<u8>,
        /// The client's authentication secret (16 bytes).
        auth: Vec<u8>,
    },
}

impl PushChannel {
    /// The platform the channel belongs to.
    pub fn platform(&self) -> Platform {
        match self {
            PushChannel::Wns { .. } => Platform::Windows,
            PushChannel::Fcm { .. } => Platform::Android,
            PushChannel::Apns { .. } => Platform::Ios,
            PushChannel::WebPush { .. } => Platform::WebPush,
        }
    }

    /// The channel's identity: two subscriptions with the same identity are the same device
    /// endpoint, so subscribing again renews instead of duplicating. Keys are not part of it
    /// (a browser may rotate them for the same endpoint).
    pub fn identity(&self) -> String {
        match self {
            PushChannel::Wns { channel_uri } => format!("wns|{}", channel_uri.as_str()),
            PushChannel::Fcm { registration_token } => format!("fcm|{registration_token}"),
            PushChannel::Apns {
                device_token,
                topic,
                environment,
            } => format!("apns|{environment:?}|{topic}|{device_token}"),
            PushChannel::WebPush { endpoint, .. } => format!("webpush|{}", endpoint.as_str()),
        }
    }
}

/// A registered device endpoint of one user of one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its id, returned to the device (and usable as `X-UNS-ID` by the app service).
    pub id: SubscriptionId,
    /// The app and user it delivers for.
    pub feed: FeedKey,
    /// The device client that registered it.
    pub client_id: ClientId,
    /// Where pushes go.
    pub channel: PushChannel,
    /// When it was first registered.
    pub created_at: Timestamp,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
}

impl Subscription {
    /// Whether it still receives pushes at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }
}

/// A host allowed for channel URLs: an exact name, or `*.suffix` for any sub-domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    /// A pattern such as `*.notify.windows.com` or `fcm.googleapis.com` (compared ignoring case).
    pub fn new(pattern: impl Into<String>) -> Self {
        Self(pattern.into().to_ascii_lowercase())
    }

    fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
            None => host == self.0,
        }
    }
}

/// Which channel URLs the server agrees to fetch. Channel URLs come from clients, so this is
/// the server's defence against being pointed at internal hosts (SSRF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPolicy {
    /// Hosts allowed for WNS channel URIs (default `*.notify.windows.com`).
    pub wns_hosts: Vec<HostPattern>,
    /// Hosts allowed for Web Push endpoints (default: the browsers' push services).
    pub web_push_hosts: Vec<HostPattern>,
    /// Whether loopback URLs (`http://127.0.0.1:port/...`, `localhost`) are accepted. Only in
    /// development mode and tests.
    pub allow_loopback: bool,
}

impl Default for ChannelPolicy {
    fn default() -> Self {
        Self {
            wns_hosts: vec![HostPattern::new("*.notify.windows.com")],
            web_push_hosts: [
                "fcm.googleapis.com",
                "updates.push.services.mozilla.com",
                "*.push.apple.com",
                "*.notify.windows.com",
            ]
            .into_iter()
            .map(HostPattern::new)
            .collect(),
            allow_loopback: false,
        }
    }
}

impl ChannelPolicy {
    fn check_url(&self, text: &str, hosts: &[HostPattern]) -> Result<ChannelUrl, &'static str> {
        let url = Url::parse(text.trim()).map_err(|_| "not a URL")?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials");
        }
        let loopback = match url.host() {
            None => return Err("has no host"),
            Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(address)) => IpAddr::V4(address).is_loopback(),
            Some(Host::Ipv6(address)) => IpAddr::V6(address).is_loopback(),
        };
        if loopback {
            return if self.allow_loopback && matches!(url.scheme(), "http" | "https") {
                Ok(ChannelUrl(url))
            } else {
                Err("loopback hosts are not allowed")
            };
        }
        if url.scheme() != "https" {
            return Err("must be https");
        }
        // IP literals never match a host pattern, which keeps private and link-local
        // addresses out without a separate list.
        let allowed = match url.host() {
            Some(Host::Domain(domain)) => hosts.iter().any(|pattern| pattern.matches(domain)),
            _ => false,
        };
        if allowed {
            Ok(ChannelUrl(url))
        } else {
            Err("host is not an allowed push service")
        }
    }
}

/// An unvalidated subscribe request: the platform and the fields of its channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelDraft {
    /// `platform`: `windows`, `android`, `iOS`, `webPush`.
    pub platform: Option<String>,
    /// `channelUri` (Windows).
    pub channel_uri: Option<String>,
    /// `registrationToken` (Android).
    pub registration_token: Option<String>,
    /// `deviceToken`, hex (iOS).
    pub device_token: Option<String>,
    /// `topic`, the bundle id (iOS).
    pub topic: Option<String>,
    /// `environment`: `production` (default) or `sandbox` (iOS).
    pub environment: Option<String>,
    /// `endpoint` (Web Push).
    pub endpoint: Option<String>,
    /// `keys.p256dh`, base64url (Web Push).
    pub p256dh: Option<String>,
    /// `keys.auth`, base64url (Web Push).
    pub auth: Option<String>,
}

impl ChannelDraft {
    /// Validates the draft into a push channel under `policy`.
    ///
    /// # Errors
    /// [`ValidationErrors`] naming each offending field.
    pub fn validate(self, policy: &ChannelPolicy) -> Result<PushChannel, ValidationErrors> {
        let mut violations = Violations::default();
        let Some(platform_text) = self.platform.as_deref() else {
            return Err(ValidationErrors::single("platform", "required"));
        };
        let platform = Platform::parse(platform_text)
            .map_err(|error| ValidationErrors::single("platform", error.to_string()))?;
        let channel = match platform {
            Platform::Windows => required(&mut violations, "channelUri", self.channel_uri)
                .and_then(|text| {
                    violations.check("channelUri", policy.check_url(&text, &policy.wns_hosts))
                })
                .map(|channel_uri| PushChannel::Wns { channel_uri }),
            Platform::Android => required(
                &mut violations,
                "registrationToken",
                self.registration_token,
            )
            .and_then(|token| violations.check("registrationToken", check_fcm_token(token)))
            .map(|registration_token| PushChannel::Fcm { registration_token }),
            Platform::Ios => {
                let device_token = required(&mut violations, "deviceToken", self.device_token)
                    .and_then(|token| violations.check("deviceToken", check_apns_token(&token)));
                let topic = required(&mut violations, "topic", self.topic)
                    .and_then(|topic| violations.check("topic", check_topic(topic)));
                let environment = match self.environment.as_deref().map(str::trim) {
                    None => Some(ApnsEnvironment::Production),
                    Some(text) if text.eq_ignore_ascii_case("production") => {
                        Some(ApnsEnvironment::Production)
                    }
                    Some(text) if text.eq_ignore_ascii_case("sandbox") => {
                        Some(ApnsEnvironment::Sandbox)
                    }
                    Some(_) => {
                        violations.push("environment", "must be production or sandbox");
                        None
                    }
                };
                match (device_token, topic, environment) {
                    (Some(device_token), Some(topic), Some(environment)) => {
                        Some(PushChannel::Apns {
                            device_token,
                            topic,
                            environment,
                        })
                    }
                    _ => None,
                }
            }
            Platform::WebPush => {
                let endpoint =
                    required(&mut violations, "endpoint", self.endpoint).and_then(|text| {
                        violations
                            .check("endpoint", policy.check_url(&text, &policy.web_push_hosts))
                    });
                let p256dh = required(&mut violations, "keys.p256dh", self.p256dh)
                    .and_then(|text| violations.check("keys.p256dh", decode_p256dh(&text)));
                let auth = required(&mut violations, "keys.auth", self.auth)
                    .and_then(|text| violations.check("keys.auth", decode_key(&text, 16)));
                match (endpoint, p256dh, auth) {
                    (Some(endpoint), Some(p256dh), Some(auth)) => Some(PushChannel::WebPush {
                        endpoint,
                        p256dh,
                        auth,
                    }),
                    _ => None,
                }
            }
        };
        violations.finish(|| channel)
    }
}

fn required(violations: &mut Violations, field: &str, value: Option<String>) -> Option<String> {
    match value {
        Some(text) if !text.trim().is_empty() => Some(text),
        _ => {
            violations.push(field, "required");
            None
        }
    }
}

fn check_fcm_token(token: String) -> Result<String, &'static str> {
    let plausible = token.len() <= 4096
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'));
    if plausible {
        Ok(token)
    } else {
        Err("not an FCM registration token")
    }
}

fn check_apns_token(token: &str) -> Result<String, &'static str> {
    let token = token.trim();
    let hex = token.len().is_multiple_of(2)
        && (32..=200).contains(&token.len())
        && token.chars().all(|c| c.is_ascii_hexdigit());
    if hex {
        Ok(token.to_ascii_lowercase())
    } else {
        Err("must be an even number (32 to 200) of hex digits")
    }
}

fn check_topic(topic: String) -> Result<String, &'static str> {
    let valid = topic.len() <= 255
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if valid {
        Ok(topic)
    } else {
        Err("not a bundle id")
    }
}

fn decode_key(text: &str, length: usize) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|_| "not base64url".to_owned())?;
    if bytes.len() == length {
        Ok(bytes)
    } else {
        Err(format!(
            "must decode to {length} bytes, not {}",
            bytes.len()
        ))
    }
}

fn decode_p256dh(text: &str) -> Result<Vec<u8>, String> {
    let bytes = decode_key(text, 65)?;
    if bytes.first() == Some(&0x04) {
        Ok(bytes)
    } else {
        Err("must be an uncompressed P-256 point (first byte 0x04)".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(platform: &str) -> ChannelDraft {
        ChannelDraft {
            platform: Some(platform.into()),
            ..ChannelDraft::default()
        }
    }

    fn web_push(endpoint: &str) -> ChannelDraft {
        let mut p256dh = vec![0x04];
        p256dh.extend([7u8; 64]);
        ChannelDraft {
            endpoint: Some(endpoint.into()),
            p256dh: Some(URL_SAFE_NO_PAD.encode(&p256dh)),
            auth: Some(URL_SAFE_NO_PAD.encode([9u8; 16])),
            ..draft("webPush")
        }
    }

    fn first_field(result: Result<PushChannel, ValidationErrors>) -> String {
        result.unwrap_err().violations()[0].field.clone()
    }

    #[test]
    fn wns_channel_must_be_https_on_notify_windows_com() {
        let policy = ChannelPolicy::default();
        let ok = ChannelDraft {
            channel_uri: Some("https://db5p.notify.windows.com/?token=AwYAAAB".into()),
            ..draft("windows")
        };
        assert_eq!(ok.validate(&policy).unwrap().platform(), Platform::Windows);
        for bad in [
            "http://db5p.notify.windows.com/?token=x",
            "https://notify.windows.com.evil.com/x",
            "https://evilnotify.windows.com/x",
            "https://10.0.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://127.0.0.1:8080/x",
            "https://user:pw@db5p.notify.windows.com/x",
            "not a url",
        ] {
            let draft = ChannelDraft {
                channel_uri: Some(bad.into()),
                ..draft("windows")
            };
            assert_eq!(first_field(draft.validate(&policy)), "channelUri", "{bad}");
        }
    }

    #[test]
    fn loopback_is_allowed_only_when_configured() {
        let mut policy = ChannelPolicy::default();
        for url in [
            "http://127.0.0.1:9000/push/1",
            "http://localhost:9000/p",
            "http://[::1]:9/p",
        ] {
            assert_eq!(
                first_field(web_push(url).validate(&policy)),
                "endpoint",
                "{url}"
            );
        }
        policy.allow_loopback = true;
        for url in [
            "http://127.0.0.1:9000/push/1",
            "http://localhost:9000/p",
            "http://[::1]:9/p",
        ] {
            assert!(web_push(url).validate(&policy).is_ok(), "{url}");
        }
        assert!(web_push("http://10.1.2.3/p").validate(&policy).is_err());
    }

    #[test]
    fn web_push_keys_are_checked() {
        let policy = ChannelPolicy::default();
        let good = web_push("https://fcm.googleapis.com/fcm/send/abc");
        let channel = good.clone().validate(&policy).unwrap();
        assert!(
            matches!(channel, PushChannel::WebPush { ref p256dh, ref auth, .. }
            if p256dh.len() == 65 && auth.len() == 16)
        );
        let short_auth = ChannelDraft {
            auth: Some(URL_SAFE_NO_PAD.encode([1u8; 8])),
            ..good.clone()
        };
        assert_eq!(first_field(short_auth.validate(&policy)), "keys.auth");
        let compressed = ChannelDraft {
            p256dh: Some(URL_SAFE_NO_PAD.encode([2u8; 65])),
            ..good.clone()
        };
        assert_eq!(first_field(compressed.validate(&policy)), "keys.p256dh");
        let garbage = ChannelDraft {
            p256dh: Some("***".into()),
            ..good
        };
        assert_eq!(first_field(garbage.validate(&policy)), "keys.p256dh");
    }

    #[test]
    fn apns_token_must_be_hex() {
        let policy = ChannelPolicy::default();
        let good = ChannelDraft {
            device_token: Some("AB".repeat(32)),
            topic: Some("com.example.app".into()),
            environment: Some("Sandbox".into()),
            ..draft("iOS")
        };
        let channel = good.clone().validate(&policy).unwrap();
        assert!(
            matches!(channel, PushChannel::Apns { ref device_token, environment: ApnsEnvironment::Sandbox, .. }
            if device_token == &"ab".repeat(32))
        );
        let bad = ChannelDraft {
            device_token: Some("zz".repeat(32)),
            ..good.clone()
        };
        assert_eq!(first_field(bad.validate(&policy)), "deviceToken");
        let bad_environment = ChannelDraft {
            environment: Some("staging".into()),
            ..good
        };
        assert_eq!(
            first_field(bad_environment.validate(&policy)),
            "environment"
        );
    }

    #[test]
    fn missing_fields_and_platform_are_named() {
        let policy = ChannelPolicy::default();
        assert_eq!(
            first_field(ChannelDraft::default().validate(&policy)),
            "platform"
        );
        assert_eq!(first_field(draft("pager").validate(&policy)), "platform");
        assert_eq!(
            first_field(draft("android").validate(&policy)),
            "registrationToken"
        );
        let errors = draft("webpush").validate(&policy).unwrap_err();
        assert!(
            errors.names("endpoint") && errors.names("keys.p256dh") && errors.names("keys.auth")
        );
    }

    #[test]
    fn identity_ignores_web_push_keys() {
        let policy = ChannelPolicy::default();
        let first = web_push("https://fcm.googleapis.com/fcm/send/abc")
            .validate(&policy)
            .unwrap();
        let rotated = ChannelDraft {
            auth: Some(URL_SAFE_NO_PAD.encode([3u8; 16])),
            ..web_push("https://fcm.googleapis.com/fcm/send/abc")
        }
        .validate(&policy)
        .unwrap();
        assert_ne!(first, rotated);
        assert_eq!(first.identity(), rotated.identity());
    }
}
