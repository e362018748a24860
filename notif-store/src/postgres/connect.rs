//! Connecting: the URL, TLS through rustls (on the project's aws-lc-rs backend) with the
//! platform's certificate verifier, and the pool.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use notif_core::ports::StoreError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

/// The connection settings of `url` (`postgres://user@host:port/db?sslmode=…`), with
/// `password` when given apart from the URL. `sslmode` takes libpq's values: `disable`,
/// `prefer` and `require`, and `verify-ca` / `verify-full`, which are `require` here — a TLS
/// connection always verifies the server's certificate and name.
///
/// # Errors
/// [`StoreError::Unavailable`] naming what is wrong with the URL (never echoing a password).
pub(crate) fn settings(
    url: &str,
    password: Option<&str>,
) -> Result<tokio_postgres::Config, StoreError> {
    let url = url
        .replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require");
    let mut config: tokio_postgres::Config = url.parse().map_err(|error| {
        StoreError::Unavailable(format!("the PostgreSQL URL is not valid: {error}"))
    })?;
    if let Some(password) = password {
        config.password(password);
    }
    if config.get_application_name().is_none() {
        config.application_name("notifd");
    }
    Ok(config)
}

/// A pool of `size` connections to `settings`; connections are made when first needed.
///
/// # Errors
/// [`StoreError::Unavailable`] when TLS cannot be set up or the pool cannot be built.
pub(crate) fn pool(settings: tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        settings,
        RustlsConnector::new()?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .build()
        .map_err(|error| StoreError::Unavailable(format!("building the connection pool: {error}")))
}

/// Opens one connection outside the pool (migrations, `LISTEN`), driving it on a task of its
/// own; returns the client and the task.
///
/// # Errors
/// [`StoreError::Unavailable`] when the database cannot be reached.
pub(crate) async fn connect(
    settings: &tokio_postgres::Config,
) -> Result<
    (
        tokio_postgres::Client,
        tokio_postgres::Connection<tokio_postgres::Socket, TlsStream<tokio_postgres::Socket>>,
    ),
    StoreError,
> {
    settings
        .connect(RustlsConnector::new()?)
        .await
        .map_err(|error| StoreError::Unavailable(super::tx::describe(&error)))
}

/// Makes rustls TLS sessions for tokio-postgres.
#[derive(Clone)]
pub(crate) struct RustlsConnector(Arc<ClientConfig>);

impl std::fmt::Debug for RustlsConnector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("RustlsConnector")
    }
}

impl RustlsConnector {
    fn new() -> Result<Self, StoreError> {
        use rustls_platform_verifier::ConfigVerifierExt as _;
        let config = ClientConfig::with_platform_verifier()
            .map_err(|error| StoreError::Unavailable(format!("setting up TLS: {error}")))?;
        Ok(Self(Arc::new(config)))
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Handshake;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Handshake> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        Ok(Handshake {
            config: Arc::clone(&self.0),
            name,
        })
    }
}

/// One TLS handshake to a named server.
pub(crate) struct Handshake {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for Handshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let session = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(TlsStream(session))
        })
    }
}

/// A TLS session to the database.
pub(crate) struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(context, buffer)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(context, buffer)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(context)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding: the certificate check already binds the session to
        // the server.
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::SslMode;

    #[test]
    fn libpq_verifying_modes_require_tls() {
        for mode in ["verify-full", "verify-ca", "require"] {
            let parsed = settings(&format!("postgres://notif@db/notif?sslmode={mode}"), None)
                .unwrap_or_else(|error| panic!("{mode}: {error}"));
            assert_eq!(parsed.get_ssl_mode(), SslMode::Require, "{mode}");
        }
        let plain = settings("postgres://notif@db/notif?sslmode=disable", None).unwrap();
        assert_eq!(plain.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        match settings("postgres://notif:hunter2@db/notif?sslmode=sometimes", None) {
            Err(StoreError::Unavailable(reason)) => {
                assert!(!reason.contains("hunter2"), "{reason}")
            }
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn a_password_apart_from_the_url_is_used() {
        let parsed = settings("postgres://notif@db/notif", Some("from-the-environment")).unwrap();
        assert_eq!(
            parsed.get_password(),
            Some(b"from-the-environment".as_slice())
        );
        assert_eq!(parsed.get_application_name(), Some("notifd"));
    }
}
