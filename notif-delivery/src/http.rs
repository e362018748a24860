//! The one long-lived HTTP client per provider credential, and its settings.

use std::time::Duration;

use crate::error::Error;

/// Connection settings of one provider's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Whole-request timeout (default 10 s): a provider that hangs is retried later.
    pub request_timeout: Duration,
    /// Connection timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Speak HTTP/2 only (APNs requires it; also lets plaintext loopback fakes use h2c).
    pub http2_only: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            http2_only: false,
        }
    }
}

/// Builds a client with keep-alive pings, so idle provider connections stay warm instead of
/// being re-established per push (APNs treats connection churn as abuse). It never follows
/// redirects: a channel URL passed the allow-list, where it redirects to did not.
pub(crate) fn client(config: &HttpConfig) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.request_timeout)
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        .http2_keep_alive_while_idle(true);
    if config.http2_only {
        builder = builder.http2_prior_knowledge();
    }
    builder
        .build()
        .map_err(|error| Error::Client(error.to_string()))
}
