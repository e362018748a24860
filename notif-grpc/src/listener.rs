//! The listener: accepts connections up to a cap, serves HTTP/1.1 and HTTP/2 (gRPC and HTTP
//! alike) on each, closes connections that stay idle past a timeout — including those that
//! never send a request — and drains every connection on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt as _;

/// How connections are accepted, kept and closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionLimits {
    /// Connections open at once; beyond it the listener stops accepting (the kernel's backlog
    /// holds the rest) until one closes.
    pub(crate) max_connections: usize,
    /// A connection with no request in progress for this long is closed.
    pub(crate) idle_timeout: Duration,
    /// HTTP/1.1: the longest wait for a request's headers.
    pub(crate) header_read_timeout: Duration,
    /// HTTP/2: ping an idle peer this often, and close it when a ping goes unanswered as long.
    pub(crate) keep_alive: Duration,
    /// HTTP/2: the most concurrent streams per connection.
    pub(crate) max_concurrent_streams: u32,
}

impl ConnectionLimits {
    /// The limits `config` sets, the connection cap kept within the open-files limit (which
    /// this raises to its hard limit first) less the descriptors the store, the providers and
    /// the listener need.
    pub(crate) fn of(config: &crate::config::Config) -> Self {
        const RESERVED: u64 = 128;
        let open_files = raise_open_files_limit().map_or(usize::MAX, |limit| {
            usize::try_from(limit.saturating_sub(RESERVED)).unwrap_or(usize::MAX)
        });
        let http = &config.http;
        Self {
            max_connections: http.max_connections.min(open_files).max(1),
            idle_timeout: Duration::from_millis(http.idle_timeout_ms.max(1)),
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms.max(1)),
            keep_alive: Duration::from_secs(http.keep_alive_seconds.max(1)),
            max_concurrent_streams: u32::try_from(config.max_concurrent_requests.max(1))
                .unwrap_or(u32::MAX),
        }
    }
}

/// What one connection is doing: requests in progress (a streamed response counts until its
/// body ends), and when the last one ended.
#[derive(Debug)]
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `started` when the last request ended.
    last_ended: AtomicU64,
}

/// Held while a request is in progress.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let elapsed = u64::try_from(activity.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.last_ended.store(elapsed, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ended: AtomicU64::new(0),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Resolves once no request has been in progress for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let idle_since =
                self.started + Duration::from_millis(self.last_ended.load(Ordering::Relaxed));
            let deadline = idle_since + timeout;
            let now = Instant::now();
            if self.in_flight.load(Ordering::Acquire) == 0 && deadline <= now {
                return;
            }
            // Busy, or not idle long enough yet: look again when it could be.
            let wait = if deadline > now {
                deadline - now
            } else {
                timeout
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Raises this process's soft open-files limit to its hard limit, and returns the limit now
/// in force (`None` where it cannot be read). Each connection holds a descriptor: at the
/// usual soft limit of 1,024 a thousand idle clients would starve everyone else.
fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, shuts
/// every connection down gracefully, and returns once all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopped) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset while queued: neither
                    // ends the server. Back off briefly so an exhausted descriptor table does
                    // not spin the loop.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            limits,
            stopped.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it closes.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stopped: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    // Without TCP_NODELAY, small responses wait on delayed ACKs (~40 ms per call).
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let in_flight = activity.begin();
            let router = router.clone();
            // The peer's address, for handlers that key by it (axum's `ConnectInfo`).
            request.extensions_mut().insert(ConnectInfo(peer));
            async move {
                let response = match router.oneshot(request.map(Body::new)).await {
                    Ok(response) => response,
                    Err(infallible) => match infallible {},
                };
                // The request stays in progress until its response body ends (streams).
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _ = &in_flight;
                        frame
                    }))
                }))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.keep_alive)
        .keep_alive_timeout(limits.keep_alive)
        .max_concurrent_streams(limits.max_concurrent_streams);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            // Either way the connection finishes what is in progress and closes; the loop
            // polls it again at once, which is what lets a connection still waiting for its
            // first bytes notice.
            _ = stopped.wait_for(|stopped| *stopped), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
            () = activity.idle_for(limits.idle_timeout), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}
