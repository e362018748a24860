//! `Server`: composes the storage, identity, gateways, runtime (dispatcher and expiry
//! sweeper) and the gRPC and HTTP routes from a `Config`, serves on a bound listener, and
//! shuts down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use notif_auth::AppDirectory;
use notif_core::notification::Limits;
use notif_core::ports::{AppRegistry, Clock};
use notif_core::service::{NotifService, Ports};
use notif_delivery::sandbox::SandboxProviders;
use notif_delivery::{DispatcherConfig, Runtime, RuntimeConfig, SystemClock};
use notif_store::OpenedStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::gateways::build_gateways;
use crate::grpc::{NotificationsService, SubscriptionsService};
use crate::ids::RandomIds;
use crate::listener::ConnectionLimits;
use crate::metrics::Metrics;
use crate::pb;
use crate::rate_limit::RateLimiter;
use crate::state::ServerState;

/// A server ready to run.
pub struct Server {
    listener: TcpListener,
    state: Arc<ServerState>,
    runtime: Runtime,
    sandbox: Option<Arc<SandboxProviders>>,
    shutting_down: watch::Sender<bool>,
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

/// The store `config` names, opened for `node`.
async fn open_storage(config: &Config, node: &str) -> anyhow::Result<OpenedStore> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let storage = config.storage(node)?;
    let opened = notif_store::open(&storage)
        .await
        .with_context(|| format!("opening the store ({storage})"))?;
    tracing::info!(store = %storage, %node, "opened the store");
    Ok(opened)
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
    /// and the runtime.
    ///
    /// # Errors
    /// When the store, keys, credentials or configuration are unusable.
    pub async fn new(listener: TcpListener, config: Config) -> anyhow::Result<Self> {
        Self::start(listener, config, None).await
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
        Self::start(listener, config, Some(clock)).await
    }

    /// Prepares the server; the domain's clock is `clock`, else the store's own (a shared
    /// database's), else the system's.
    async fn start(
        listener: TcpListener,
        config: Config,
        clock: Option<Arc<dyn Clock>>,
    ) -> anyhow::Result<Self> {
        let address = listener
            .local_addr()
            .context("reading the listen address")?;
        let development = config.is_development();
        let node = config.node_name(address);
        if development && !address.ip().is_loopback() && !config.allow_development_on_public_address
        {
            bail!(
                "development mode (demo app, development sign-in) refuses to listen on {address}; \
                 configure apps and issuers, or set allow_development_on_public_address"
            );
        }
        let OpenedStore {
            storage,
            events,
            clock: store_clock,
        } = open_storage(&config, &node).await?;
        let clock = clock
            .or(store_clock)
            .unwrap_or_else(|| Arc::new(SystemClock));
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
        let identity = crate::identity::identity(
            &config,
            &apps,
            Arc::clone(&storage.identity),
            &public_url,
            development,
        )
        .await?;

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
            notifications: Arc::clone(&storage.notifications),
            subscriptions: Arc::clone(&storage.subscriptions),
            apps: Arc::clone(&registry),
            clock: Arc::clone(&clock),
            ids: Arc::new(RandomIds::default()),
            events: Arc::clone(&events),
        };
        let service = NotifService::new(ports, limits, config.channel_policy(development));
        let runtime = Runtime::new(
            storage.clone(),
            events.as_ref(),
            gateways,
            Arc::clone(&clock),
            RuntimeConfig {
                dispatcher: DispatcherConfig {
                    lease: Duration::from_secs(config.dispatcher.lease_seconds),
                    batch_size: config.dispatcher.batch_size.max(1),
                    retry: notif_core::delivery::RetryPolicy {
                        initial_delay: Duration::from_millis(
                            config.dispatcher.retry_initial_delay_ms,
                        ),
                        max_delay: Duration::from_millis(config.dispatcher.retry_max_delay_ms),
                        ..notif_core::delivery::RetryPolicy::default()
                    },
                    ..DispatcherConfig::default()
                },
                sweep_every: Duration::from_secs(config.expiry_sweep_seconds.max(1)),
            },
        );
        let metrics = Arc::new(Metrics::new(node.clone()));
        metrics.attach_dispatcher(runtime.stats());
        let (shutting_down, shutting_down_receiver) = watch::channel(false);
        let state = Arc::new(ServerState {
            service,
            store: Arc::clone(&storage.admin),
            verifier: identity.verifier,
            apps: registry,
            identity: identity.provider,
            limiter: RateLimiter::new(config.rate_limits),
            metrics,
            sandbox: sandbox.clone(),
            links: crate::http::Links::new(public_url, config.http.trust_proxy),
            max_body_bytes: config.http.max_body_bytes,
            events,
            shutting_down: shutting_down_receiver,
            streams: crate::follow::StreamSlots::new(
                config.limits.max_streams_per_user.max(1),
                Duration::from_millis(config.limits.stream_stall_ms.max(1)),
            ),
        });
        Ok(Self {
            listener,
            state,
            runtime,
            sandbox,
            shutting_down,
            connection_limits: ConnectionLimits::of(&config),
        })
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// When the socket cannot report it.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// This node's name (see [`Config::node`]).
    pub fn node(&self) -> &str {
        self.state.metrics.node()
    }

    /// Where this server announces durable writes; an embedder (or a test that moves the
    /// clock) can tell the dispatcher that jobs may be due with
    /// [`FeedEvents::jobs_due`](notif_core::ports::FeedEvents::jobs_due).
    pub fn events(&self) -> Arc<dyn notif_core::ports::FeedEvents> {
        Arc::clone(&self.state.service.ports().events)
    }

    /// The sandbox providers, in development mode.
    pub fn sandbox(&self) -> Option<Arc<SandboxProviders>> {
        self.sandbox.clone()
    }

    /// Serves until `shutdown` completes; then stops accepting, ends streams, stops the
    /// runtime (draining the dispatcher) and closes the store.
    ///
    /// # Errors
    /// When serving fails or the store cannot be closed.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            runtime,
            sandbox: _sandbox,
            shutting_down,
            connection_limits,
        } = self;
        let running = runtime.start();
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
                    context: Arc::clone(&state),
                },
            ))
            .add_service(pb::subscriptions_server::SubscriptionsServer::new(
                SubscriptionsService {
                    context: Arc::clone(&state),
                },
            ))
            .clone()
            .routes();
        let router = crate::http::edge(
            grpc.into_axum_router(),
            crate::http::router(Arc::clone(&state)),
        );
        let state_for_shutdown = Arc::clone(&state);
        crate::listener::serve(listener, router, connection_limits, async move {
            shutdown.await;
            tracing::info!("shutting down: no new requests");
            let _ = shutting_down.send(true);
            drop(state_for_shutdown);
        })
        .await;
        // The handlers are done: every handle to the store goes with them and the runtime,
        // which releases a sled directory for the next process (or a restart in this one).
        drop(state);
        running.stop().await.context("closing the store")?;
        tracing::info!("stopped");
        Ok(())
    }
}
