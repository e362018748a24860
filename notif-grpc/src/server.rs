//! `Server`: composes the store, identity, gateways, dispatcher, expiry sweeper and the gRPC and
//! HTTP routes from a `Config`, serves on a bound listener, and shuts down gracefully.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use notif_auth::{
    AppDirectory, IdentityProvider, IdentityProviderConfig, JwtVerifier, KeySource, RemoteJwks,
    SANDBOX_CREDENTIAL, TrustedIssuer,
};
use notif_core::ids::{AppId, NotificationId, SubscriptionId};
use notif_core::notification::Limits;
use notif_core::platform::Platform;
use notif_core::ports::{AppRegistry, Clock, IdGenerator, NotificationStore, PushGateway};
use notif_core::service::{NotifService, Ports};
use notif_core::subscription::{ChannelPolicy, HostPattern};
use notif_core::time::Timestamp;
use notif_delivery::sandbox::SandboxProviders;
use notif_delivery::{
    ApnsConfig, ApnsGateway, Dispatcher, DispatcherConfig, FcmConfig, FcmGateway, GOOGLE_TOKEN_URL,
    Gateways, HttpConfig, SystemClock, WebPushConfig, WebPushGateway, WnsConfig, WnsGateway,
};
use notif_store::SledStore;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use crate::config::{Config, CredentialConfig};
use crate::context::Context;
use crate::grpc::{NotificationsService, SubscriptionsService};
use crate::listener::ConnectionLimits;
use crate::metrics::Metrics;
use crate::pb;
use crate::rate_limit::RateLimiter;

/// Random UUID v7 ids from the operating system's generator.
#[derive(Debug, Default)]
struct RandomIds {
    /// Mixed into every id, so ids stay unique even if the generator fails.
    counter: AtomicU64,
}

impl RandomIds {
    fn random(&self) -> [u8; 10] {
        let mut random = [0u8; 10];
        let _ = aws_lc_rs::rand::fill(&mut random);
        let count = self.counter.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        for (byte, mix) in random.iter_mut().zip(count.iter().rev()) {
            *byte ^= mix;
        }
        random
    }
}

fn unix_millis(now: Timestamp) -> u64 {
    u64::try_from(now.unix_millis()).unwrap_or(0)
}

impl IdGenerator for RandomIds {
    fn notification_id(&self, now: Timestamp) -> NotificationId {
        NotificationId::from_parts(unix_millis(now), self.random())
    }

    fn subscription_id(&self, now: Timestamp) -> SubscriptionId {
        SubscriptionId::from_parts(unix_millis(now), self.random())
    }
}

/// A server ready to run.
pub struct Server {
    listener: TcpListener,
    context: Arc<Context>,
    store: Arc<SledStore>,
    dispatcher: Dispatcher,
    sandbox: Option<Arc<SandboxProviders>>,
    shutting_down: watch::Sender<bool>,
    clock: Arc<dyn Clock>,
    sweep_every: Duration,
    connection_limits: ConnectionLimits,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Server")
            .field("listener", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Serves `config` on `listener` until `shutdown` completes.
///
/// # Errors
/// When start-up fails (store, keys, credentials, configuration) or the listener fails.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    Server::new(listener, config).await?.run(shutdown).await
}

#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key_id: String,
    private_key: String,
    #[serde(default)]
    token_uri: Option<String>,
}

fn build_gateway(
    name: &str,
    platform: Platform,
    config: &Config,
    sandbox: Option<&SandboxProviders>,
) -> anyhow::Result<Arc<dyn PushGateway>> {
    let http = HttpConfig {
        request_timeout: Duration::from_millis(config.dispatcher.request_timeout_ms.max(1)),
        ..HttpConfig::default()
    };
    if let (SANDBOX_CREDENTIAL, Some(sandbox)) = (name, sandbox) {
        return Ok(match platform {
            Platform::Ios => Arc::new(ApnsGateway::new(sandbox.apns_config(http))?),
            Platform::Android => Arc::new(FcmGateway::new(sandbox.fcm_config(http))?),
            Platform::Windows => Arc::new(WnsGateway::new(sandbox.wns_config(http))?),
            Platform::WebPush => Arc::new(WebPushGateway::new(sandbox.web_push_config(http))?),
        });
    }
    let credential = config
        .credentials
        .get(name)
        .with_context(|| format!("credential {name:?} is referenced but not configured"))?;
    let providers = &config.providers;
    let gateway: Arc<dyn PushGateway> = match (platform, credential) {
        (
            Platform::Ios,
            CredentialConfig::Apns {
                team_id,
                key_id,
                private_key_file,
            },
        ) => {
            let private_key_pem = std::fs::read_to_string(private_key_file)
                .with_context(|| format!("reading {}", private_key_file.display()))?;
            Arc::new(ApnsGateway::new(ApnsConfig {
                team_id: team_id.clone(),
                key_id: key_id.clone(),
                private_key_pem,
                production_url: providers.apns_production.clone(),
                sandbox_url: providers.apns_sandbox.clone(),
                http: HttpConfig {
                    http2_only: true,
                    ..http
                },
            })?)
        }
        (
            Platform::Android,
            CredentialConfig::Fcm {
                service_account_file,
            },
        ) => {
            let text = std::fs::read_to_string(service_account_file)
                .with_context(|| format!("reading {}", service_account_file.display()))?;
            let account: ServiceAccount = serde_json::from_str(&text).with_context(|| {
                format!(
                    "parsing the service account {}",
                    service_account_file.display()
                )
            })?;
            Arc::new(FcmGateway::new(FcmConfig {
                project_id: account.project_id,
                client_email: account.client_email,
                private_key_id: account.private_key_id,
                private_key_pem: account.private_key,
                token_url: account.token_uri.unwrap_or_else(|| GOOGLE_TOKEN_URL.into()),
                base_url: providers.fcm.clone(),
                http,
            })?)
        }
        (
            Platform::Windows,
            CredentialConfig::Wns {
                client_id,
                client_secret_env,
                scope,
            },
        ) => {
            let client_secret = std::env::var(client_secret_env).with_context(|| {
                format!("the WNS secret variable {client_secret_env} is not set")
            })?;
            Arc::new(WnsGateway::new(WnsConfig {
                client_id: client_id.clone(),
                client_secret,
                token_url: providers.wns_token.clone(),
                scope: scope.clone(),
                http,
            })?)
        }
        (
            Platform::WebPush,
            CredentialConfig::WebPush {
                vapid_private_key_env,
                subject,
            },
        ) => {
            let key = std::env::var(vapid_private_key_env).with_context(|| {
                format!("the VAPID key variable {vapid_private_key_env} is not set")
            })?;
            let vapid_private_key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key.trim())
                .context("the VAPID key is not base64url")?;
            Arc::new(WebPushGateway::new(WebPushConfig {
                vapid_private_key,
                subject: subject.clone(),
                http,
            })?)
        }
        (platform, _) => bail!("credential {name:?} is not a {platform} credential"),
    };
    Ok(gateway)
}

fn build_gateways(
    config: &Config,
    apps: &AppDirectory,
    sandbox: Option<&SandboxProviders>,
) -> anyhow::Result<Gateways> {
    // One gateway (one client, one concurrency bound) per credential, shared by its apps.
    let mut users: BTreeMap<(String, Platform), Vec<AppId>> = BTreeMap::new();
    for app in apps.apps() {
        for (platform, credential) in &app.credentials {
            users
                .entry((credential.0.clone(), *platform))
                .or_default()
                .push(app.id.clone());
        }
    }
    let mut gateways = Gateways::new();
    for ((name, platform), app_ids) in users {
        let gateway = build_gateway(&name, platform, config, sandbox)?;
        gateways.add(app_ids, gateway, config.dispatcher.concurrency);
    }
    Ok(gateways)
}

fn channel_policy(config: &Config, development: bool) -> ChannelPolicy {
    let mut policy = ChannelPolicy::default();
    policy
        .wns_hosts
        .extend(config.channels.wns_hosts.iter().map(HostPattern::new));
    policy
        .web_push_hosts
        .extend(config.channels.web_push_hosts.iter().map(HostPattern::new));
    // Development mode turns loopback channels on by default; the configuration decides.
    policy.allow_loopback = config.channels.allow_loopback.unwrap_or(development);
    policy
}

impl Server {
    /// Binds `config.listen` and prepares the server.
    ///
    /// # Errors
    /// When the address cannot be bound or start-up fails.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        Self::new(listener, config).await
    }

    /// Prepares the server on a bound listener: opens the store, sets up identity, gateways
    /// and the dispatcher.
    ///
    /// # Errors
    /// When the store, keys, credentials or configuration are unusable.
    pub async fn new(listener: TcpListener, config: Config) -> anyhow::Result<Self> {
        Self::with_clock(listener, config, Arc::new(SystemClock)).await
    }

    /// [`Server::new`] with another clock for the domain and the dispatcher (tests move it to
    /// make notifications expire). Tokens are always checked against the wall clock.
    ///
    /// # Errors
    /// As [`Server::new`].
    pub async fn with_clock(
        listener: TcpListener,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let address = listener
            .local_addr()
            .context("reading the listen address")?;
        let development = config.is_development();
        if development && !address.ip().is_loopback() && !config.allow_development_on_public_address
        {
            bail!(
                "development mode (demo app, development sign-in) refuses to listen on {address}; \
                 configure apps and issuers, or set allow_development_on_public_address"
            );
        }
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let store_directory = config.data_dir.join("store");
        let store = tokio::task::spawn_blocking(move || SledStore::open(&store_directory))
            .await
            .context("opening the store")?
            .context("opening the store")?;
        let store = Arc::new(store);

        let apps = Arc::new(match (config.apps.is_empty(), development) {
            (true, true) => AppDirectory::demo(),
            (true, false) => {
                bail!("no apps configured (the demo app exists in development mode only)")
            }
            (false, _) => AppDirectory::from_config(&config.apps)?,
        });
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"))
            .trim_end_matches('/')
            .to_owned();

        let identity = if config.identity.embedded {
            let provider = IdentityProvider::new(
                IdentityProviderConfig {
                    issuer: public_url.clone(),
                    audience: config.identity.audience.clone(),
                    access_token_lifetime: Duration::from_secs(
                        config.identity.access_token_minutes * 60,
                    ),
                    refresh_token_lifetime: Duration::from_secs(
                        config.identity.refresh_token_days * 86_400,
                    ),
                    // Anyone could sign in as anyone: development only.
                    development_sign_in: development,
                    key_file: Some(config.data_dir.join("idp-keys.json")),
                },
                Arc::clone(&apps),
            )?;
            Some(Arc::new(provider))
        } else {
            None
        };
        let mut issuers: Vec<TrustedIssuer> = identity
            .iter()
            .map(|identity| identity.trusted_issuer())
            .collect();
        let jwks_client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the JWKS client")?;
        for issuer in &config.identity.issuers {
            issuers.push(TrustedIssuer {
                issuer: issuer.issuer.clone(),
                audience: issuer
                    .audience
                    .clone()
                    .unwrap_or_else(|| config.identity.audience.clone()),
                keys: KeySource::Remote(RemoteJwks::new(
                    issuer.jwks_url.clone(),
                    jwks_client.clone(),
                    Duration::from_secs(config.identity.jwks_refresh_seconds),
                )),
            });
        }
        if issuers.is_empty() {
            bail!(
                "no token issuer: enable the embedded identity provider or configure identity.issuers"
            );
        }
        let verifier = Arc::new(JwtVerifier::new(
            issuers,
            Duration::from_secs(config.identity.leeway_seconds),
        ));

        let sandbox = if development {
            Some(Arc::new(
                SandboxProviders::start()
                    .await
                    .context("starting the sandbox providers")?,
            ))
        } else {
            None
        };
        let gateways = build_gateways(&config, &apps, sandbox.as_deref())?;

        let limits = Limits {
            max_subscriptions_per_user: config.limits.max_subscriptions_per_user,
            max_raw_content_bytes: config.limits.max_raw_content_bytes,
            subscription_lifetime: Duration::from_secs(config.limits.subscription_days * 86_400),
            ..Limits::default()
        };
        let registry: Arc<dyn AppRegistry> = apps.clone();
        let ports = Ports {
            notifications: store.clone(),
            subscriptions: store.clone(),
            apps: Arc::clone(&registry),
            clock: Arc::clone(&clock),
            ids: Arc::new(RandomIds::default()),
        };
        let service = NotifService::new(ports, limits, channel_policy(&config, development));
        let dispatcher = Dispatcher::new(
            store.clone(),
            gateways,
            Arc::clone(&clock),
            DispatcherConfig {
                lease: Duration::from_secs(config.dispatcher.lease_seconds),
                batch_size: config.dispatcher.batch_size.max(1),
                retry: notif_core::delivery::RetryPolicy {
                    initial_delay: Duration::from_millis(config.dispatcher.retry_initial_delay_ms),
                    max_delay: Duration::from_millis(config.dispatcher.retry_max_delay_ms),
                    ..notif_core::delivery::RetryPolicy::default()
                },
                ..DispatcherConfig::default()
            },
        );
        let metrics = Arc::new(Metrics::default());
        metrics.attach_dispatcher(dispatcher.stats());
        let (shutting_down, shutting_down_receiver) = watch::channel(false);
        let context = Arc::new(Context {
            service,
            store: Arc::clone(&store),
            verifier,
            apps: registry,
            identity,
            limiter: RateLimiter::new(config.rate_limits),
            metrics,
            sandbox: sandbox.clone(),
            links: crate::http::Links::new(public_url, config.http.trust_proxy),
            max_body_bytes: config.http.max_body_bytes,
            changes: broadcast::channel(1024).0,
            dispatcher_wake: dispatcher.waker(),
            shutting_down: shutting_down_receiver,
        });
        Ok(Self {
            listener,
            context,
            store,
            dispatcher,
            sandbox,
            shutting_down,
            clock,
            sweep_every: Duration::from_secs(config.expiry_sweep_seconds.max(1)),
            connection_limits: ConnectionLimits {
                max_connections: max_connections(config.http.max_connections),
                idle_timeout: Duration::from_millis(config.http.idle_timeout_ms.max(1)),
                header_read_timeout: Duration::from_millis(
                    config.http.header_read_timeout_ms.max(1),
                ),
                keep_alive: Duration::from_secs(config.http.keep_alive_seconds.max(1)),
                max_concurrent_streams: u32::try_from(config.max_concurrent_requests.max(1))
                    .unwrap_or(u32::MAX),
            },
        })
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// When the socket cannot report it.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The sandbox providers, in development mode.
    pub fn sandbox(&self) -> Option<Arc<SandboxProviders>> {
        self.sandbox.clone()
    }

    /// Serves until `shutdown` completes; then stops accepting, ends streams, drains the
    /// dispatcher and flushes the store.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Self {
            listener,
            context,
            store,
            dispatcher,
            sandbox: _sandbox,
            shutting_down,
            clock,
            sweep_every,
            connection_limits,
        } = self;
        let (stop_background, _) = watch::channel(false);
        let dispatcher_stop = stop_background.subscribe();
        let dispatching = tokio::spawn(dispatcher.run(async move {
            let mut stop = dispatcher_stop;
            let _ = stop.wait_for(|stopped| *stopped).await;
        }));
        let sweeping = tokio::spawn(sweep_expired(
            store.clone(),
            clock,
            sweep_every,
            stop_background.subscribe(),
        ));

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<pb::notifications_server::NotificationsServer<NotificationsService>>()
            .await;
        health_reporter
            .set_serving::<pb::subscriptions_server::SubscriptionsServer<SubscriptionsService>>()
            .await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let grpc = tonic::service::Routes::builder()
            .add_service(health_service)
            // v1 for current clients; v1alpha for grpcio-reflection, Evans and older Postman.
            .add_service(
                reflection()
                    .build_v1()
                    .context("building the reflection service")?,
            )
            .add_service(
                reflection()
                    .build_v1alpha()
                    .context("building the v1alpha reflection service")?,
            )
            .add_service(pb::notifications_server::NotificationsServer::new(
                NotificationsService {
                    context: Arc::clone(&context),
                },
            ))
            .add_service(pb::subscriptions_server::SubscriptionsServer::new(
                SubscriptionsService {
                    context: Arc::clone(&context),
                },
            ))
            .clone()
            .routes();
        let router = crate::http::edge(
            grpc.into_axum_router(),
            crate::http::router(Arc::clone(&context)),
        );
        let context_for_shutdown = Arc::clone(&context);
        crate::listener::serve(listener, router, connection_limits, async move {
            shutdown.await;
            tracing::info!("shutting down: no new requests");
            let _ = shutting_down.send(true);
            drop(context_for_shutdown);
        })
        .await;
        let _ = stop_background.send(true);
        let _ = dispatching.await;
        let _ = sweeping.await;
        drop(context);
        // With every user gone, close the store so its directory is free for the next
        // process (or a restart in this one); otherwise at least make everything durable.
        match Arc::try_unwrap(store) {
            Ok(store) => store.close().await.context("closing the store")?,
            Err(store) => store.flush().await.context("flushing the store")?,
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The configured connection cap, within the open-files limit (raised first) less the
/// descriptors the store, the providers and the listener need.
fn max_connections(configured: usize) -> usize {
    const RESERVED: u64 = 128;
    let limit = crate::listener::raise_open_files_limit().map_or(usize::MAX, |limit| {
        usize::try_from(limit.saturating_sub(RESERVED)).unwrap_or(usize::MAX)
    });
    configured.min(limit).max(1)
}

/// Removes expired notifications and subscriptions periodically.
async fn sweep_expired(
    store: Arc<SledStore>,
    clock: Arc<dyn Clock>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    const BATCH: usize = 10_000;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        loop {
            match store.expire(clock.now(), BATCH).await {
                Ok(removed) if removed == BATCH => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "expiry sweep failed");
                    break;
                }
            }
        }
    }
}
