//! The app registry: cross-device apps and their OAuth clients from configuration, with
//! confidential clients' secrets stored only as argon2 hashes; and the built-in demo app.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use notif_core::app::{App, CredentialRef};
use notif_core::ids::{AppId, ClientId, HostName};
use notif_core::platform::Platform;
use notif_core::ports::AppRegistry;
use serde::Deserialize;

use crate::error::Error;

/// The demo app's host name.
pub const DEMO_HOST: &str = "graphnotifications.sample.windows.com";
/// The demo app's confidential app-service client.
pub const DEMO_APP_SERVICE_CLIENT: &str = "demo-app-service";
/// The demo app-service client's secret (development only).
pub const DEMO_APP_SERVICE_SECRET: &str = "demo-secret";
/// The demo app's public device client.
pub const DEMO_DEVICE_CLIENT: &str = "demo-client";
/// The credential name the demo app uses on every platform: the sandbox providers.
pub const SANDBOX_CREDENTIAL: &str = "sandbox";

/// One cross-device app in configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct AppConfig {
    /// The app's key.
    pub id: String,
    /// Its verified host name (`targetHostName`).
    pub host_name: String,
    /// A name for people.
    #[serde(default)]
    pub display_name: String,
    /// Its OAuth clients.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Platform name → push credential name.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
}

/// One OAuth client of an app.
#[derive(Debug, Clone, Deserialize)]
pub struct ClientConfig {
    /// The client id.
    pub id: String,
    /// For confidential clients (app services): the argon2 PHC hash of the secret, as
    /// printed by `notifctl hash-secret`. Public clients (devices) have none.
    #[serde(default)]
    pub secret_hash: Option<String>,
}

/// The registered apps, implementing [`AppRegistry`].
#[derive(Debug, Clone)]
pub struct AppDirectory {
    apps: Vec<App>,
    secret_hashes: HashMap<ClientId, String>,
}

/// Why a client could not authenticate at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientAuthError {
    /// No such client, a public client, or the wrong secret: one answer for all.
    #[error("client authentication failed")]
    Failed,
}

/// Hashes a client secret for configuration (argon2id, random salt, PHC string).
pub fn hash_secret(secret: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        // Hashing only fails for parameters or salts outside argon2's limits, and these
        // are the crate's defaults.
        .unwrap_or_default()
}

impl AppDirectory {
    /// The directory described by `apps`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first invalid field: a bad id or host name, an
    /// unknown platform, a malformed secret hash, or a client listed in two apps.
    pub fn from_config(apps: &[AppConfig]) -> Result<Self, Error> {
        let invalid = |field: String, reason: String| Error::InvalidConfig { field, reason };
        let mut directory = Self {
            apps: Vec::new(),
            secret_hashes: HashMap::new(),
        };
        for (index, config) in apps.iter().enumerate() {
            let path = format!("apps[{index}]");
            let id = AppId::new(config.id.clone())
                .map_err(|error| invalid(format!("{path}.id"), error.to_string()))?;
            let host_name = HostName::new(&config.host_name)
                .map_err(|error| invalid(format!("{path}.host_name"), error.to_string()))?;
            let mut client_ids = std::collections::BTreeSet::new();
            for (client_index, client) in config.clients.iter().enumerate() {
                let field = format!("{path}.clients[{client_index}]");
                let client_id = ClientId::new(client.id.clone())
                    .map_err(|error| invalid(format!("{field}.id"), error.to_string()))?;
                if directory.app_for_client(&client_id).is_some() || client_ids.contains(&client_id)
                {
                    return Err(invalid(
                        format!("{field}.id"),
                        "client belongs to two apps".into(),
                    ));
                }
                if let Some(hash) = &client.secret_hash {
                    PasswordHash::new(hash).map_err(|error| {
                        invalid(
                            format!("{field}.secret_hash"),
                            format!("not an argon2 PHC hash: {error}"),
                        )
                    })?;
                    directory
                        .secret_hashes
                        .insert(client_id.clone(), hash.clone());
                }
                client_ids.insert(client_id);
            }
            let mut credentials = Vec::new();
            for (platform, credential) in &config.credentials {
                let platform = Platform::parse(platform)
                    .map_err(|error| invalid(format!("{path}.credentials"), error.to_string()))?;
                credentials.push((platform, CredentialRef(credential.clone())));
            }
            directory.apps.push(App {
                id,
                host_name,
                display_name: if config.display_name.is_empty() {
                    config.id.clone()
                } else {
                    config.display_name.clone()
                },
                client_ids,
                credentials,
            });
        }
        Ok(directory)
    }

    /// The built-in demo app (development only): host `graphnotifications.sample.windows.com`,
    /// app-service client `demo-app-service` with secret `demo-secret`, device client
    /// `demo-client`, and the sandbox credential on every platform.
    pub fn demo() -> Self {
        let config = AppConfig {
            id: "demo".into(),
            host_name: DEMO_HOST.into(),
            display_name: "notif demo".into(),
            clients: vec![
                ClientConfig {
                    id: DEMO_APP_SERVICE_CLIENT.into(),
                    secret_hash: Some(hash_secret(DEMO_APP_SERVICE_SECRET)),
                },
                ClientConfig {
                    id: DEMO_DEVICE_CLIENT.into(),
                    secret_hash: None,
                },
            ],
            credentials: Platform::ALL
                .iter()
                .map(|platform| (platform.as_str().to_owned(), SANDBOX_CREDENTIAL.to_owned()))
                .collect(),
        };
        // The demo configuration is a constant known to be valid.
        Self::from_config(&[config]).unwrap_or_else(|_| Self {
            apps: Vec::new(),
            secret_hashes: HashMap::new(),
        })
    }

    /// Every registered app.
    pub fn apps(&self) -> &[App] {
        &self.apps
    }

    /// Whether `client_id` is a confidential client (one with a secret).
    pub fn has_secret(&self, client_id: &ClientId) -> bool {
        self.secret_hashes.contains_key(client_id)
    }

    /// Authenticates a confidential client by its secret; returns its app. Slow by design
    /// (argon2): call it off async worker threads.
    ///
    /// # Errors
    /// [`ClientAuthError::Failed`] for an unknown or public client or a wrong secret.
    pub fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<(ClientId, App), ClientAuthError> {
        let client_id = ClientId::new(client_id).map_err(|_| ClientAuthError::Failed)?;
        let hash = self
            .secret_hashes
            .get(&client_id)
            .ok_or(ClientAuthError::Failed)?;
        let parsed = PasswordHash::new(hash).map_err(|_| ClientAuthError::Failed)?;
        if !secret_matches(secret, &parsed) {
            return Err(ClientAuthError::Failed);
        }
        let app = self
            .app_for_client(&client_id)
            .ok_or(ClientAuthError::Failed)?;
        Ok((client_id, app))
    }
}

thread_local! {
    /// argon2's working memory (19 MiB for the default parameters), kept per thread and
    /// reused: allocating it per verification left each call's pages resident (measured:
    /// ~6 MB of peak RSS per verification, 20 in a row on one thread).
    static ARGON2_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Whether `secret` hashes to `hash` under the hash's own algorithm, version and parameters.
fn secret_matches(secret: &str, hash: &PasswordHash<'_>) -> bool {
    let verify = || -> Option<bool> {
        let params = Params::try_from(hash).ok()?;
        let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
        let version = hash
            .version
            .map_or(Ok(Version::default()), Version::try_from)
            .ok()?;
        let expected = hash.hash?;
        let mut salt = [0u8; 64];
        let salt = hash.salt?.decode_b64(&mut salt).ok()?;
        let mut output = vec![0u8; expected.len()];
        ARGON2_MEMORY.with_borrow_mut(|memory| {
            memory.resize(params.block_count(), Block::default());
            Argon2::new(algorithm, version, params)
                .hash_password_into_with_memory(
                    secret.as_bytes(),
                    salt,
                    &mut output,
                    &mut memory[..],
                )
                .ok()
        })?;
        Some(
            aws_lc_rs::constant_time::verify_slices_are_equal(&output, expected.as_bytes()).is_ok(),
        )
    };
    verify().unwrap_or(false)
}

impl AppRegistry for AppDirectory {
    fn app_for_client(&self, client: &ClientId) -> Option<App> {
        self.apps
            .iter()
            .find(|app| app.client_ids.contains(client))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_app_has_the_documented_values() {
        let directory = AppDirectory::demo();
        let app = directory
            .app_for_client(&ClientId::new(DEMO_DEVICE_CLIENT).unwrap())
            .unwrap();
        assert_eq!(app.host_name.as_str(), DEMO_HOST);
        assert!(
            app.client_ids
                .contains(&ClientId::new(DEMO_APP_SERVICE_CLIENT).unwrap())
        );
        assert_eq!(app.credential(Platform::Ios).unwrap().0, SANDBOX_CREDENTIAL);
        let (client, _) = directory
            .authenticate_client(DEMO_APP_SERVICE_CLIENT, DEMO_APP_SERVICE_SECRET)
            .unwrap();
        assert_eq!(client.as_str(), DEMO_APP_SERVICE_CLIENT);
    }

    #[test]
    fn wrong_secrets_and_public_clients_fail_alike() {
        let directory = AppDirectory::demo();
        for (client, secret) in [
            (DEMO_APP_SERVICE_CLIENT, "wrong"),
            (DEMO_DEVICE_CLIENT, ""),
            ("nobody", DEMO_APP_SERVICE_SECRET),
        ] {
            assert_eq!(
                directory.authenticate_client(client, secret).map(|_| ()),
                Err(ClientAuthError::Failed)
            );
        }
    }

    #[test]
    fn secrets_are_stored_hashed() {
        let hash = hash_secret("s3cret");
        assert!(hash.starts_with("$argon2"));
        assert!(!hash.contains("s3cret"));
    }

    #[test]
    fn bad_configuration_names_the_field() {
        let config = |host: &str, platform: &str| AppConfig {
            id: "a".into(),
            host_name: host.into(),
            display_name: String::new(),
            clients: vec![ClientConfig {
                id: "c".into(),
                secret_hash: Some("plain-text".into()),
            }],
            credentials: [(platform.to_owned(), "cred".to_owned())].into(),
        };
        let field = |result: Result<AppDirectory, Error>| match result {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("expected invalid config, got {other:?}"),
        };
        assert_eq!(
            field(AppDirectory::from_config(&[config("bad host", "ios")])),
            "apps[0].host_name"
        );
        assert_eq!(
            field(AppDirectory::from_config(&[config("a.example.com", "ios")])),
            "apps[0].clients[0].secret_hash"
        );
        let mut unknown_platform = config("a.example.com", "pager");
        unknown_platform.clients[0].secret_hash = None;
        assert_eq!(
            field(AppDirectory::from_config(&[unknown_platform])),
            "apps[0].credentials"
        );
    }
}
