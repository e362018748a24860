//! `notifd`: the notif server. With no arguments it runs in development mode: sled under
//! `./notif-data`, the embedded identity provider with the demo app, sandbox push providers,
//! listening on 127.0.0.1:50051.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use notif_grpc::{Config, Server};
use tracing::Instrument as _;

/// The notif server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Arguments {
    /// A TOML configuration file (see notif.example.toml); without one, development mode.
    #[arg(long, env = "NOTIF_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, overriding the configuration.
    #[arg(long, env = "NOTIF_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory, overriding the configuration.
    #[arg(long, env = "NOTIF_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The store: a PostgreSQL-wire database URL (`postgres://user@host/db`), overriding
    /// the configuration; without one, sled under the data directory.
    #[arg(long, env = "NOTIF_STORE")]
    store: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let arguments = Arguments::parse();
    let mut config = match &arguments.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = arguments.listen {
        config.listen = listen;
    }
    if let Some(data_dir) = arguments.data_dir {
        config.data_dir = data_dir;
    }
    if let Some(store) = arguments.store {
        config.store.url = Some(store);
    }
    let development = config.is_development();
    let data_dir = config.data_dir.clone();
    let server = Server::bind(config).await?;
    let address = server.local_addr().context("reading the listen address")?;
    let node = server.node().to_owned();
    tracing::info!(%address, %node, data_dir = %data_dir.display(), "notifd listening (gRPC and HTTP)");
    if development {
        tracing::warn!(
            "DEVELOPMENT MODE: demo app graphnotifications.sample.windows.com, app-service client \
             demo-app-service / secret demo-secret, device client demo-client; anyone can sign in \
             at POST /dev/sign-in; pushes go to sandbox providers (GET /dev/sandbox/pushes)"
        );
    }
    // What the server logs while serving — shutdown included — names the node.
    server
        .run(shutdown_signal())
        .instrument(tracing::info_span!("notifd", %node))
        .await
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
