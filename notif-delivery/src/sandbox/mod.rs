//! Loopback stand-ins for APNs, FCM, WNS and Web Push: one HTTP server (HTTP/1.1 and h2c)
//! that speaks each provider's wire protocol — paths, required headers, token endpoints,
//! status codes and error bodies — records what it receives, decrypts Web Push bodies for
//! registered subscriptions, and can be told to fail in each provider's own way.

mod checks;
mod protocol;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use notif_core::platform::Platform;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{ApnsConfig, FcmConfig, HttpConfig, WebPushConfig, WebPushGateway, WnsConfig};

/// What a provider is told to answer, in its own protocol's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeResponse {
    /// Accept the push.
    Accept,
    /// The endpoint is gone (APNs 410 Unregistered, FCM 404 UNREGISTERED, WNS 410, Web Push 410).
    Gone,
    /// The provider credential expired (APNs 403 ExpiredProviderToken, FCM/WNS 401).
    ExpiredCredentials,
    /// Throttled: 429 (WNS: 406) with `Retry-After` (WNS: `X-WNS-CONTINUE-AFTER`).
    Throttle {
        /// Seconds to wait.
        retry_after_seconds: u64,
    },
    /// A server error status (500, 503).
    ServerError(u16),
    /// Another refusal with the provider's reason (APNs `BadTopic`, FCM `INVALID_ARGUMENT`).
    Refuse {
        /// The HTTP status.
        status: u16,
        /// The provider's reason code.
        reason: String,
    },
    /// Answer `307 Temporary Redirect` to this location.
    Redirect(String),
    /// Answer only after this long (longer than the client's timeout: a timeout).
    Hang(Duration),
    /// Drop the connection without an answer.
    Reset,
}

/// Random failures in a share of requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chaos {
    /// The share of pushes that fail, `0.0..=1.0`.
    pub failure_rate: f64,
    /// How long a hanging request hangs (past the client timeout).
    pub hang: Duration,
    /// The seed of the failure choice, so a failing run can be replayed.
    pub seed: u64,
}

/// A push as a provider received it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedPush {
    /// The platform.
    pub platform: Platform,
    /// The request path.
    pub path: String,
    /// The request headers, lower-case names.
    pub headers: BTreeMap<String, String>,
    /// The body as sent (encrypted for Web Push).
    pub body: Vec<u8>,
    /// The notif envelope found in the push (decrypted for registered Web Push subscriptions).
    pub envelope: Option<serde_json::Value>,
    /// What the provider answered.
    pub answered: FakeResponse,
    /// When it arrived.
    pub received_at: std::time::Instant,
}

/// How many received pushes the sandbox keeps, the oldest dropped first: a development server
/// that runs for days holds a bounded log, and [`SandboxProviders::received_count`] still
/// counts every push.
pub const KEPT_PUSHES: usize = 10_000;

/// The latest [`KEPT_PUSHES`] pushes, and how many arrived in all.
#[derive(Default)]
struct PushLog {
    kept: VecDeque<ReceivedPush>,
    received: u64,
}

impl PushLog {
    fn record(&mut self, push: ReceivedPush) {
        if self.kept.len() == KEPT_PUSHES {
            self.kept.pop_front();
        }
        self.kept.push_back(push);
        self.received += 1;
    }
}

#[derive(Default)]
struct State {
    pushes: PushLog,
    scripts: HashMap<Platform, VecDeque<FakeResponse>>,
    chaos: Option<(Chaos, u64)>,
    issued_tokens: HashMap<String, Platform>,
    token_requests: HashMap<Platform, usize>,
    apns_tokens: Vec<String>,
    web_push_keys: HashMap<String, (Vec<u8>, Vec<u8>)>,
    refusals: Vec<Refused>,
}

/// A push a provider refused as malformed, as the real provider would have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The platform.
    pub platform: Platform,
    /// The request path.
    pub path: String,
    /// The status answered.
    pub status: u16,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    apns_public_key: Vec<u8>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The running sandbox providers.
pub struct SandboxProviders {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    apns_key_pem: String,
    fcm_key_pem: String,
    vapid_key: Vec<u8>,
}

impl fmt::Debug for SandboxProviders {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SandboxProviders")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for SandboxProviders {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The listener failed.
    #[error("sandbox listener: {0}")]
    Io(#[from] std::io::Error),
    /// Key generation failed.
    #[error("sandbox keys: {0}")]
    Keys(String),
}

impl SandboxProviders {
    /// Starts the providers on an ephemeral loopback port.
    ///
    /// # Errors
    /// [`SandboxError`] when the port cannot be bound or keys cannot be generated.
    pub async fn start() -> Result<Self, SandboxError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let keys_error =
            |error: aws_lc_rs::error::Unspecified| SandboxError::Keys(error.to_string());
        let apns_pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(keys_error)?;
        let apns_pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, apns_pkcs8.as_ref())
                .map_err(|error| SandboxError::Keys(error.to_string()))?;
        let apns_public_key = aws_lc_rs::signature::KeyPair::public_key(&apns_pair)
            .as_ref()
            .to_vec();
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).map_err(keys_error)?;
        let rsa_der = rsa.as_der().map_err(keys_error)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            apns_public_key,
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(Self {
            address,
            shared,
            server,
            apns_key_pem: pem("PRIVATE KEY", apns_pkcs8.as_ref()),
            fcm_key_pem: pem("PRIVATE KEY", rsa_der.as_ref()),
            vapid_key: WebPushGateway::generate_vapid_key(),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// An APNs credential for the sandbox (HTTP/2 prior knowledge over loopback).
    pub fn apns_config(&self, http: HttpConfig) -> ApnsConfig {
        ApnsConfig {
            team_id: "SANDBOXTM1".into(),
            key_id: "SANDBOXKY1".into(),
            private_key_pem: self.apns_key_pem.clone(),
            production_url: self.base_url(),
            sandbox_url: self.base_url(),
            http: HttpConfig {
                http2_only: true,
                ..http
            },
        }
    }

    /// An FCM service account for the sandbox.
    pub fn fcm_config(&self, http: HttpConfig) -> FcmConfig {
        FcmConfig {
            project_id: "notif-sandbox".into(),
            client_email: "notif@notif-sandbox.iam.gserviceaccount.com".into(),
            private_key_id: "sandbox-key".into(),
            private_key_pem: self.fcm_key_pem.clone(),
            token_url: format!("{}/token", self.base_url()),
            base_url: self.base_url(),
            http,
        }
    }

    /// A WNS credential for the sandbox.
    pub fn wns_config(&self, http: HttpConfig) -> WnsConfig {
        WnsConfig {
            client_id: "ms-app://sandbox".into(),
            client_secret: "sandbox-secret".into(),
            token_url: format!("{}/accesstoken.srf", self.base_url()),
            scope: "notify.windows.com".into(),
            http,
        }
    }

    /// A VAPID key pair for the sandbox.
    pub fn web_push_config(&self, http: HttpConfig) -> WebPushConfig {
        WebPushConfig {
            vapid_private_key: self.vapid_key.clone(),
            subject: "mailto:sandbox@notif.invalid".into(),
            http,
        }
    }

    /// A WNS channel URI on the sandbox for `device`.
    pub fn wns_channel_url(&self, device: &str) -> String {
        format!("{}/wns/{device}", self.base_url())
    }

    /// A Web Push endpoint on the sandbox for `device`.
    pub fn web_push_endpoint(&self, device: &str) -> String {
        format!("{}/push/{device}", self.base_url())
    }

    /// Lets the sandbox decrypt pushes to `device`: the subscription's private key (32-byte
    /// P-256 scalar) and auth secret.
    pub fn register_web_push_keys(&self, device: &str, private_key: Vec<u8>, auth: Vec<u8>) {
        self.shared
            .state()
            .web_push_keys
            .insert(device.to_owned(), (private_key, auth));
    }

    /// The pushes received so far, in arrival order: the latest [`KEPT_PUSHES`] of them.
    pub fn pushes(&self) -> Vec<ReceivedPush> {
        self.shared.state().pushes.kept.iter().cloned().collect()
    }

    /// How many pushes were received so far, those no longer kept included.
    pub fn received_count(&self) -> u64 {
        self.shared.state().pushes.received
    }

    /// For every throttled push that was attempted again: how long the provider asked to wait,
    /// and how long passed until the next attempt of the same push (same platform, path and
    /// notification).
    pub fn throttled_retries(&self) -> Vec<(Duration, Duration)> {
        let pushes = self.pushes();
        let key = |push: &ReceivedPush| {
            let id = push
                .envelope
                .as_ref()
                .map(|envelope| envelope["id"].to_string());
            (push.platform, push.path.clone(), id)
        };
        pushes
            .iter()
            .enumerate()
            .filter_map(|(index, push)| {
                let FakeResponse::Throttle {
                    retry_after_seconds,
                } = push.answered
                else {
                    return None;
                };
                let next = pushes[index + 1..]
                    .iter()
                    .find(|later| key(later) == key(push))?;
                Some((
                    Duration::from_secs(retry_after_seconds),
                    next.received_at.duration_since(push.received_at),
                ))
            })
            .collect()
    }

    /// Queues answers for the next pushes to `platform`, before chaos or acceptance.
    pub fn script(&self, platform: Platform, responses: impl IntoIterator<Item = FakeResponse>) {
        self.shared
            .state()
            .scripts
            .entry(platform)
            .or_default()
            .extend(responses);
    }

    /// Fails a share of all pushes at random from now on (`None` stops it).
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        self.shared.state().chaos = chaos.map(|chaos| (chaos, chaos.seed.max(1)));
    }

    /// How many access tokens `platform`'s token endpoint issued (FCM, WNS).
    pub fn token_requests(&self, platform: Platform) -> usize {
        self.shared
            .state()
            .token_requests
            .get(&platform)
            .copied()
            .unwrap_or(0)
    }

    /// Every push refused as malformed (size, headers, payload, VAPID), in arrival order:
    /// these are not in [`SandboxProviders::pushes`].
    pub fn refusals(&self) -> Vec<Refused> {
        self.shared.state().refusals.clone()
    }

    /// The distinct APNs provider tokens seen, in order of first use.
    pub fn apns_provider_tokens(&self) -> Vec<String> {
        self.shared.state().apns_tokens.clone()
    }

    /// The most pushes that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<Incoming>| {
                let shared = Arc::clone(&shared);
                async move { protocol::handle(&shared, request).await }
            });
            // A connection error is the client's problem (or a scripted reset); the server
            // goes on serving others.
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The response type of the sandbox.
pub(crate) type Response = hyper::Response<Full<Bytes>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn push(number: usize) -> ReceivedPush {
        ReceivedPush {
            platform: Platform::Android,
            path: format!("/push/{number}"),
            headers: BTreeMap::new(),
            body: Vec::new(),
            envelope: None,
            answered: FakeResponse::Accept,
            received_at: std::time::Instant::now(),
        }
    }

    #[test]
    fn the_log_keeps_the_latest_pushes_and_counts_them_all() {
        let mut log = PushLog::default();
        for number in 0..KEPT_PUSHES + 3 {
            log.record(push(number));
        }
        assert_eq!(log.received, u64::try_from(KEPT_PUSHES + 3).unwrap());
        assert_eq!(log.kept.len(), KEPT_PUSHES);
        assert_eq!(
            log.kept.front().map(|push| push.path.as_str()),
            Some("/push/3")
        );
        let last = format!("/push/{}", KEPT_PUSHES + 2);
        assert_eq!(
            log.kept.back().map(|push| push.path.as_str()),
            Some(last.as_str())
        );
    }
}
