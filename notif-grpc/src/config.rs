//! Configuration: a TOML file for deployments, and the development defaults used when there is
//! none. Every option is documented in `notif.example.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use notif_auth::AppConfig;
use notif_core::subscription::{ChannelPolicy, HostPattern};
use serde::Deserialize;

use crate::rate_limit::RateLimits;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where to listen (gRPC and HTTP on one port).
    pub listen: SocketAddr,
    /// Where the store and the identity provider's keys live.
    pub data_dir: PathBuf,
    /// Which store: sled under `data_dir` (the default), or a PostgreSQL-wire database.
    pub store: StoreSettings,
    /// This node's name in logs (`node`), metrics (the `node` label of every series),
    /// `/readyz` and the leases it holds; unique among the nodes sharing a database.
    /// Default: `<host name>:<port>`.
    pub node: Option<String>,
    /// The URL clients reach this server at (tokens' issuer, `Location` headers); defaults to
    /// `http://<listen address>`.
    pub public_url: Option<String>,
    /// Identity: the embedded provider and external issuers.
    pub identity: IdentityConfig,
    /// Cross-device apps. With none (and no external issuer), notifd runs in development mode
    /// with the built-in demo app and sandbox providers.
    pub apps: Vec<AppConfig>,
    /// Push credentials by name, referenced from apps' `credentials`.
    pub credentials: BTreeMap<String, CredentialConfig>,
    /// Provider base URLs (change only to point at test doubles).
    pub providers: ProviderUrls,
    /// Which channel URLs subscriptions may use.
    pub channels: ChannelConfig,
    /// Per-user subscription cap and content limits.
    pub limits: LimitsConfig,
    /// Request rate limits.
    pub rate_limits: RateLimits,
    /// The dispatcher.
    pub dispatcher: DispatcherSettings,
    /// Most requests served at once per connection; more are refused as overloaded.
    pub max_concurrent_requests: usize,
    /// The HTTP edge: connections, bodies, and the links answers carry.
    pub http: HttpSettings,
    /// Seconds between expiry sweeps.
    pub expiry_sweep_seconds: u64,
    /// Development features — development sign-in, sandbox providers behind the `sandbox`
    /// credential, loopback channel URLs. Unset: on exactly when no apps and no external
    /// issuers are configured (then the demo app is used).
    pub development: Option<bool>,
    /// Development mode on a non-loopback address is refused unless this is set.
    pub allow_development_on_public_address: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("./notif-data"),
            store: StoreSettings::default(),
            node: None,
            public_url: None,
            identity: IdentityConfig::default(),
            apps: Vec::new(),
            credentials: BTreeMap::new(),
            providers: ProviderUrls::default(),
            channels: ChannelConfig::default(),
            limits: LimitsConfig::default(),
            rate_limits: RateLimits::default(),
            dispatcher: DispatcherSettings::default(),
            max_concurrent_requests: 1024,
            http: HttpSettings::default(),
            expiry_sweep_seconds: 60,
            development: None,
            allow_development_on_public_address: false,
        }
    }
}

impl Config {
    /// Reads a TOML file.
    ///
    /// # Errors
    /// When the file cannot be read or is not valid configuration (the message names the key).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Which channel URLs subscriptions may use: the default allow-lists and the configured
    /// hosts; loopback when configured, else in development mode only.
    pub fn channel_policy(&self, development: bool) -> ChannelPolicy {
        let mut policy = ChannelPolicy::default();
        policy
            .wns_hosts
            .extend(self.channels.wns_hosts.iter().map(HostPattern::new));
        policy
            .web_push_hosts
            .extend(self.channels.web_push_hosts.iter().map(HostPattern::new));
        policy.allow_loopback = self.channels.allow_loopback.unwrap_or(development);
        policy
    }

    /// The store to open for `node`: the configured database, else sled under
    /// `data_dir/store`.
    ///
    /// # Errors
    /// When the URL is not a PostgreSQL URL, or the password's environment variable is
    /// named but unset.
    pub fn storage(&self, node: &str) -> anyhow::Result<notif_store::StorageConfig> {
        let Some(url) = &self.store.url else {
            return Ok(notif_store::StorageConfig::Sled {
                directory: self.data_dir.join("store"),
            });
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            anyhow::bail!("store.url must be a postgres:// or postgresql:// URL");
        }
        let password = match &self.store.password_env {
            Some(variable) => Some(std::env::var(variable).with_context(|| {
                format!("store.password_env names {variable}, which is not set")
            })?),
            None => None,
        };
        Ok(notif_store::StorageConfig::Postgres(
            notif_store::PostgresConfig {
                password,
                pool_size: self.store.pool_size.max(1),
                events: if self.store.notify {
                    notif_store::EventDelivery::Notify
                } else {
                    notif_store::EventDelivery::Poll
                },
                poll_interval: std::time::Duration::from_millis(
                    self.store.poll_interval_ms.max(10),
                ),
                node: node.to_owned(),
                ..notif_store::PostgresConfig::new(url.clone())
            },
        ))
    }

    /// This node's name: [`Config::node`], else `<host name>:<port>` for the port it listens
    /// on.
    pub fn node_name(&self, listening: std::net::SocketAddr) -> String {
        self.node.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "notifd".into());
            format!("{host}:{}", listening.port())
        })
    }

    /// Whether development features are on (see [`Config::development`]).
    pub fn is_development(&self) -> bool {
        self.development
            .unwrap_or(self.apps.is_empty() && self.identity.issuers.is_empty())
    }
}

/// The `[store]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// A PostgreSQL-wire database (`postgres://user@host:port/db?sslmode=require`); unset:
    /// sled under `data_dir`.
    pub url: Option<String>,
    /// The environment variable holding the database password (kept out of the file).
    pub password_env: Option<String>,
    /// Most database connections this node opens for reads and writes (its dispatcher keeps
    /// two more of its own, so writes never make delivery wait).
    pub pool_size: usize,
    /// Announce changes to the other nodes with `LISTEN/NOTIFY` (off for engines without
    /// it, such as CockroachDB: then the poll alone carries them).
    pub notify: bool,
    /// How often each node polls the feeds it watches and the queue, in milliseconds.
    pub poll_interval_ms: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: None,
            password_env: None,
            pool_size: 16,
            notify: true,
            poll_interval_ms: 1_000,
        }
    }
}

/// Identity settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Run the embedded identity provider (token endpoint, JWKS).
    pub embedded: bool,
    /// The audience tokens must carry.
    pub audience: String,
    /// Access-token lifetime of the embedded provider.
    pub access_token_minutes: u64,
    /// Refresh-token lifetime of the embedded provider.
    pub refresh_token_days: u64,
    /// Allowed clock skew for `exp` and `nbf`.
    pub leeway_seconds: u64,
    /// Least time between JWKS refetches for an unknown key id.
    pub jwks_refresh_seconds: u64,
    /// External issuers whose tokens are accepted.
    pub issuers: Vec<IssuerConfig>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            embedded: true,
            audience: "api://notif".into(),
            access_token_minutes: 60,
            refresh_token_days: 30,
            leeway_seconds: 60,
            jwks_refresh_seconds: 60,
            issuers: Vec::new(),
        }
    }
}

/// An external token issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss`.
    pub issuer: String,
    /// Its JWKS URL.
    pub jwks_url: String,
    /// The audience its tokens carry for notif (defaults to `identity.audience`).
    pub audience: Option<String>,
}

/// A push credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialConfig {
    /// APNs token authentication.
    Apns {
        /// Team ID.
        team_id: String,
        /// Key ID.
        key_id: String,
        /// The `.p8` file.
        private_key_file: PathBuf,
    },
    /// FCM HTTP v1.
    Fcm {
        /// The service-account JSON file.
        service_account_file: PathBuf,
    },
    /// WNS.
    Wns {
        /// The Package SID or app registration id.
        client_id: String,
        /// The environment variable holding the secret.
        client_secret_env: String,
        /// The token scope.
        #[serde(default = "default_wns_scope")]
        scope: String,
    },
    /// Web Push (VAPID).
    WebPush {
        /// The environment variable holding the base64url VAPID private key.
        vapid_private_key_env: String,
        /// The contact for the VAPID `sub` claim.
        subject: String,
    },
}

fn default_wns_scope() -> String {
    "notify.windows.com".into()
}

/// Provider endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderUrls {
    /// APNs production.
    pub apns_production: String,
    /// APNs sandbox.
    pub apns_sandbox: String,
    /// FCM.
    pub fcm: String,
    /// WNS token endpoint.
    pub wns_token: String,
}

impl Default for ProviderUrls {
    fn default() -> Self {
        Self {
            apns_production: notif_delivery::APNS_PRODUCTION.into(),
            apns_sandbox: notif_delivery::APNS_SANDBOX.into(),
            fcm: notif_delivery::FCM_URL.into(),
            wns_token: notif_delivery::WNS_TOKEN_URL.into(),
        }
    }
}

/// Channel URL rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelConfig {
    /// Extra WNS hosts (patterns like `*.notify.windows.com`) beyond the default.
    pub wns_hosts: Vec<String>,
    /// Extra Web Push hosts beyond the browsers' push services.
    pub web_push_hosts: Vec<String>,
    /// Accept loopback channel URLs. Unset: on in development mode only.
    pub allow_loopback: Option<bool>,
}

/// The HTTP edge.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Build links (`Location`, `@odata.nextLink`, `@odata.context`) from the `Forwarded`
    /// or `X-Forwarded-Proto` / `X-Forwarded-Host` headers of a reverse proxy in front;
    /// otherwise from `public_url`. Only set it behind a proxy that sets those headers.
    pub trust_proxy: bool,
    /// Largest request body, compressed or inflated; larger gets 413.
    pub max_body_bytes: usize,
    /// Connections open at once (also bounded by the open-files limit).
    pub max_connections: usize,
    /// Milliseconds a connection may stay without a request in progress before it is closed.
    pub idle_timeout_ms: u64,
    /// Milliseconds an HTTP/1.1 client has to send a request's headers.
    pub header_read_timeout_ms: u64,
    /// Seconds between HTTP/2 keep-alive pings; an unanswered ping closes the connection.
    pub keep_alive_seconds: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            trust_proxy: false,
            max_body_bytes: 2 * 1024 * 1024,
            max_connections: 4096,
            idle_timeout_ms: 60_000,
            header_read_timeout_ms: 10_000,
            keep_alive_seconds: 20,
        }
    }
}

/// Limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Subscriptions per user and app.
    pub max_subscriptions_per_user: usize,
    /// Largest rawContent in bytes.
    pub max_raw_content_bytes: usize,
    /// Days a subscription lives without renewal.
    pub subscription_days: u64,
    /// Live change streams (`WatchChanges`, the HTTP event stream) one user may hold open
    /// on one node.
    pub max_streams_per_user: usize,
    /// Milliseconds a live stream waits for a reader that stopped reading before ending it
    /// (nothing is buffered for such a reader).
    pub stream_stall_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = notif_core::notification::Limits::default();
        Self {
            max_subscriptions_per_user: limits.max_subscriptions_per_user,
            max_raw_content_bytes: limits.max_raw_content_bytes,
            subscription_days: limits.subscription_lifetime.as_secs() / 86_400,
            max_streams_per_user: 16,
            stream_stall_ms: 10_000,
        }
    }
}

/// Dispatcher settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatcherSettings {
    /// Sends in flight per credential.
    pub concurrency: usize,
    /// Jobs leased at once.
    pub batch_size: usize,
    /// Seconds a leased job stays invisible.
    pub lease_seconds: u64,
    /// Milliseconds before a provider request times out (and is retried).
    pub request_timeout_ms: u64,
    /// First retry delay, milliseconds (then doubling, with full jitter).
    pub retry_initial_delay_ms: u64,
    /// Longest computed retry delay, milliseconds.
    pub retry_max_delay_ms: u64,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        Self {
            concurrency: 64,
            batch_size: 64,
            lease_seconds: 60,
            request_timeout_ms: 10_000,
            retry_initial_delay_ms: 1_000,
            retry_max_delay_ms: 300_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_parses_and_is_not_development() {
        let config: Config = toml::from_str(include_str!("../../notif.example.toml")).unwrap();
        assert!(!config.is_development());
        assert_eq!(config.apps.len(), 1);
        assert_eq!(config.credentials.len(), 4);
        assert!(matches!(
            config.credentials["contoso-apns"],
            CredentialConfig::Apns { .. }
        ));
    }

    #[test]
    fn no_configuration_is_development() {
        assert!(Config::default().is_development());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<Config>("listen_address = \"x\"").unwrap_err();
        assert!(error.to_string().contains("listen_address"));
    }
}
