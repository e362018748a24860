//! notif-tests: the end-to-end and system suites (in `tests/`), and [`TestServer`], the
//! in-process `notifd` they run against: a real server on an ephemeral loopback port with a
//! temporary data directory, two apps, and sandbox push providers; [`child`] runs it as a
//! child process instead.

pub mod child;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use notif_auth::{AppConfig, ClientConfig, hash_secret};
use notif_delivery::P256Key;
use notif_delivery::sandbox::{ReceivedPush, SandboxProviders};
use notif_grpc::pb::notifications_client::NotificationsClient;
use notif_grpc::pb::subscriptions_client::SubscriptionsClient;
use notif_grpc::{Config, RateLimits, Server};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The demo app's host.
pub const DEMO_HOST: &str = "graphnotifications.sample.windows.com";
/// The second app's host.
pub const OTHER_HOST: &str = "other.example.com";

/// A running in-process server.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The sandbox providers behind every app's credentials.
    pub sandbox: Arc<SandboxProviders>,
    /// An HTTP client.
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    running: Option<JoinHandle<anyhow::Result<()>>>,
    /// The data directory; kept alive as long as the server.
    pub data_dir: tempfile::TempDir,
    config: Config,
    clock: Option<Arc<dyn notif_core::ports::Clock>>,
    events: Arc<dyn notif_core::ports::FeedEvents>,
}

fn app(id: &str, host: &str, service: &str, secret: &str, device: &str) -> AppConfig {
    AppConfig {
        id: id.into(),
        host_name: host.into(),
        display_name: id.into(),
        clients: vec![
            ClientConfig {
                id: service.into(),
                secret_hash: Some(hash_secret(secret)),
            },
            ClientConfig {
                id: device.into(),
                secret_hash: None,
            },
        ],
        credentials: ["windows", "android", "ios", "webpush"]
            .iter()
            .map(|platform| {
                (
                    (*platform).to_owned(),
                    notif_auth::SANDBOX_CREDENTIAL.to_owned(),
                )
            })
            .collect(),
    }
}

/// The configuration the tests use: two apps (`demo` and `other`), development features on,
/// generous rate limits, a data directory of its own.
pub fn test_config(data_dir: &std::path::Path) -> Config {
    Config {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: data_dir.to_path_buf(),
        apps: vec![
            app(
                "demo",
                DEMO_HOST,
                "demo-app-service",
                "demo-secret",
                "demo-client",
            ),
            app(
                "other",
                OTHER_HOST,
                "other-service",
                "other-secret",
                "other-client",
            ),
        ],
        development: Some(true),
        rate_limits: RateLimits {
            per_user_per_second: 10_000.0,
            per_user_burst: 10_000.0,
            ..RateLimits::default()
        },
        expiry_sweep_seconds: 1,
        ..Config::default()
    }
}

/// The store a suite runs notifd on: every suite that can run on both runs on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStore {
    /// sled in the server's data directory.
    Sled,
    /// A schema of its own on the tests' throw-away PostgreSQL (see
    /// [`notif_store::contract::TestPostgres`]).
    Postgres,
}

impl TestStore {
    /// Points `config` at this store.
    ///
    /// # Panics
    /// For PostgreSQL, when no server can be found or started (saying how to install one).
    pub fn configure(self, config: &mut Config) {
        if self == TestStore::Postgres {
            config.store.url = Some(notif_store::contract::TestPostgres::shared().fresh_url());
            config.store.pool_size = 8;
            config.store.poll_interval_ms = 100;
        }
    }
}

/// [`test_config`] on `store`.
///
/// # Panics
/// As [`TestStore::configure`].
pub fn test_config_on(data_dir: &std::path::Path, store: TestStore) -> Config {
    let mut config = test_config(data_dir);
    store.configure(&mut config);
    config
}

impl TestServer {
    /// Starts a server with [`test_config`] on `store`.
    ///
    /// # Panics
    /// When the server cannot start: the test cannot proceed.
    pub async fn start_on(store: TestStore) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let config = test_config_on(data_dir.path(), store);
        Self::start_with(config, data_dir).await
    }

    /// Starts a server with [`test_config`].
    ///
    /// # Panics
    /// When the server cannot start: the test cannot proceed.
    pub async fn start() -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let config = test_config(data_dir.path());
        Self::start_with(config, data_dir).await
    }

    /// Starts a server with [`test_config`] as `adjust` changes it, in a data directory of its
    /// own.
    ///
    /// # Panics
    /// When the server cannot start.
    pub async fn start_configured(adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = test_config(data_dir.path());
        adjust(&mut config);
        Self::start_with(config, data_dir).await
    }

    /// Starts a server with `config` in `data_dir`.
    ///
    /// # Panics
    /// When the server cannot start.
    pub async fn start_with(config: Config, data_dir: tempfile::TempDir) -> Self {
        Self::start_with_clock(config, data_dir, None).await
    }

    /// Starts a server whose domain and dispatcher read `clock` (the wall clock when `None`).
    ///
    /// # Panics
    /// When the server cannot start.
    pub async fn start_with_clock(
        config: Config,
        data_dir: tempfile::TempDir,
        clock: Option<Arc<dyn notif_core::ports::Clock>>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("the address binds");
        let server = match &clock {
            Some(clock) => Server::with_clock(listener, config.clone(), Arc::clone(clock)).await,
            None => Server::new(listener, config.clone()).await,
        }
        .expect("the server starts");
        let address = server.local_addr().expect("a listen address");
        let sandbox = server.sandbox().expect("development mode runs the sandbox");
        let events = server.events();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self {
            base_url: format!("http://{address}"),
            sandbox,
            http: reqwest::Client::new(),
            stop: Some(stop),
            running: Some(running),
            data_dir,
            config,
            clock,
            events,
        }
    }

    /// Tells the dispatcher that jobs may be due: after a test moved the server's clock past
    /// a job's due time, so the dispatcher need not wait for its idle wake-up.
    pub fn jobs_may_be_due(&self) {
        self.events.jobs_due();
    }

    /// Stops the server gracefully and starts it again on the same address and data
    /// directory (tokens stay valid: the issuer and its keys are the same).
    ///
    /// # Panics
    /// When the server cannot stop or start.
    pub async fn restart(mut self) -> Self {
        let address: std::net::SocketAddr = self
            .base_url
            .trim_start_matches("http://")
            .parse()
            .expect("an address");
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running
                .await
                .expect("the server task")
                .expect("the server ran cleanly");
        }
        let mut config = self.config.clone();
        config.listen = address;
        let data_dir = tempfile::TempDir::new().expect("a placeholder directory");
        let data_dir = std::mem::replace(&mut self.data_dir, data_dir);
        Self::start_with_clock(config, data_dir, self.clock.take()).await
    }

    /// Stops the server gracefully and waits for it.
    ///
    /// # Panics
    /// When the server failed while running.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running
                .await
                .expect("the server task")
                .expect("the server ran cleanly");
        }
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends `method path` with a bearer `token` and an optional JSON body; returns the status
    /// and the JSON answer (`Null` when there is none).
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` with `token`: the JSON answer.
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        self.call(reqwest::Method::GET, path, token, None).await.1
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Value {
        self.http
            .post(self.url("/oauth2/v2.0/token"))
            .form(form)
            .send()
            .await
            .expect("the token endpoint answers")
            .json()
            .await
            .expect("a JSON token response")
    }

    /// A development sign-in: a user token for `user` on `client`.
    ///
    /// # Panics
    /// When sign-in fails.
    pub async fn sign_in(&self, client: &str, user: &str) -> String {
        dev_sign_in(&self.http, &self.base_url, client, user).await
    }

    /// Exchanges a user token on behalf of the user for the app service's token.
    ///
    /// # Panics
    /// When the exchange fails.
    pub async fn on_behalf_of(&self, service: &str, secret: &str, user_token: &str) -> String {
        let response = self
            .token_request(&[
                ("grant_type", notif_auth::JWT_BEARER_GRANT),
                ("client_id", service),
                ("client_secret", secret),
                ("assertion", user_token),
                ("requested_token_use", "on_behalf_of"),
                ("scope", "Notifications.ReadWrite.CreatedByApp"),
            ])
            .await;
        response["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("OBO failed: {response}"))
            .to_owned()
    }

    /// An app-only (client credentials) token.
    ///
    /// # Panics
    /// When the grant fails.
    pub async fn app_token(&self, service: &str, secret: &str) -> String {
        let response = self
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_id", service),
                ("client_secret", secret),
            ])
            .await;
        response["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("grant failed: {response}"))
            .to_owned()
    }

    /// gRPC clients on one channel.
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn grpc(&self) -> (NotificationsClient<Channel>, SubscriptionsClient<Channel>) {
        let channel = Channel::from_shared(self.base_url.clone())
            .expect("a valid URL")
            .connect()
            .await
            .expect("the server accepts gRPC");
        (
            NotificationsClient::new(channel.clone()),
            SubscriptionsClient::new(channel),
        )
    }

    /// A subscribe body for `platform` on the sandbox; for Web Push the sandbox learns the keys
    /// so it can decrypt.
    pub fn channel_body(&self, platform: &str, device: &str) -> Value {
        match platform {
            "windows" => {
                json!({"platform": "windows", "channelUri": self.sandbox.wns_channel_url(device)})
            }
            "android" => {
                json!({"platform": "android", "registrationToken": format!("fcm-{device}")})
            }
            "ios" => {
                let token: String = device.bytes().map(|byte| format!("{byte:02x}")).collect();
                json!({"platform": "iOS", "deviceToken": format!("{token:0>64}"), "topic": "com.example.app", "environment": "sandbox"})
            }
            _ => {
                let P256Key {
                    private_key,
                    public_key,
                } = P256Key::generate();
                let auth = [7u8; 16].to_vec();
                self.sandbox
                    .register_web_push_keys(device, private_key, auth.clone());
                json!({
                    "platform": "webPush",
                    "endpoint": self.sandbox.web_push_endpoint(device),
                    "keys": {"p256dh": URL_SAFE_NO_PAD.encode(public_key), "auth": URL_SAFE_NO_PAD.encode(auth)},
                })
            }
        }
    }

    /// Subscribes a device with `user_token`; returns the subscription id.
    ///
    /// # Panics
    /// When subscribing fails.
    pub async fn subscribe(&self, user_token: &str, platform: &str, device: &str) -> String {
        let response: Value = self
            .http
            .post(self.url("/me/notifications/subscriptions"))
            .bearer_auth(user_token)
            .json(&self.channel_body(platform, device))
            .send()
            .await
            .expect("subscribe answers")
            .json()
            .await
            .expect("a JSON subscription");
        response["id"]
            .as_str()
            .unwrap_or_else(|| panic!("subscribe failed: {response}"))
            .to_owned()
    }

    /// Waits until the sandbox has received pushes satisfying `done`, checking every 20 ms,
    /// for at most `limit`; returns them.
    ///
    /// # Panics
    /// When the time runs out.
    pub async fn pushes_until(
        &self,
        limit: Duration,
        done: impl Fn(&[ReceivedPush]) -> bool,
    ) -> Vec<ReceivedPush> {
        let deadline = Instant::now() + limit;
        loop {
            let pushes = self.sandbox.pushes();
            if done(&pushes) {
                return pushes;
            }
            assert!(
                Instant::now() < deadline,
                "pushes did not arrive within {limit:?}: {pushes:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A development sign-in against the notif at `base` (`http://host:port`): a user token for
/// `user` on `client`.
///
/// # Panics
/// When sign-in fails.
pub async fn dev_sign_in(http: &reqwest::Client, base: &str, client: &str, user: &str) -> String {
    let response: Value = http
        .post(format!("{base}/dev/sign-in"))
        .form(&[("client_id", client), ("user", user)])
        .send()
        .await
        .expect("sign-in answers")
        .json()
        .await
        .expect("a JSON sign-in response");
    response["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// Waits, for at most `limit`, until every owed Web Push — an (endpoint path, notification
/// id) pair — reached `receiver`, and checks that each duplicate delivery carries the same
/// `changeSeq` as the first (the at-least-once promise); returns how many were duplicates.
///
/// # Panics
/// When an owed push has not arrived in time, or a duplicate carries another change.
pub async fn await_owed_pushes(
    receiver: &SandboxProviders,
    owed: &[(String, String)],
    limit: Duration,
) -> usize {
    let deadline = Instant::now() + limit;
    let deliveries = loop {
        // The change numbers each (endpoint, notification) received.
        let mut deliveries: std::collections::BTreeMap<(String, String), Vec<u64>> =
            std::collections::BTreeMap::new();
        for push in receiver.pushes() {
            if let Some(envelope) = push.envelope {
                deliveries
                    .entry((
                        push.path.clone(),
                        envelope["id"].as_str().unwrap_or_default().to_owned(),
                    ))
                    .or_default()
                    .push(envelope["changeSeq"].as_u64().unwrap_or_default());
            }
        }
        let missing = owed
            .iter()
            .filter(|key| !deliveries.contains_key(*key))
            .count();
        if missing == 0 {
            break deliveries;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} owed pushes were never delivered",
            owed.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for seqs in deliveries.values() {
        assert!(
            seqs.windows(2).all(|pair| pair[0] == pair[1]),
            "a duplicate carries the same changeSeq"
        );
    }
    deliveries.values().map(|seqs| seqs.len() - 1).sum()
}

/// This process's peak resident set (`VmHWM` of `/proc/self/status`), in bytes.
///
/// # Panics
/// Where `/proc` is not Linux's.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib * 1024
}
