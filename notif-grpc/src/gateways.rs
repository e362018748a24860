//! The push gateways of a configuration: one gateway (one client, one concurrency bound) per
//! credential and platform, from the credential files and environment variables it names —
//! or the sandbox providers in development mode.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use notif_auth::{AppDirectory, SANDBOX_CREDENTIAL};
use notif_core::ids::AppId;
use notif_core::platform::Platform;
use notif_core::ports::PushGateway;
use notif_delivery::sandbox::SandboxProviders;
use notif_delivery::{
    ApnsConfig, ApnsGateway, FcmConfig, FcmGateway, GOOGLE_TOKEN_URL, Gateways, HttpConfig,
    WebPushConfig, WebPushGateway, WnsConfig, WnsGateway,
};
use serde::Deserialize;

use crate::config::{Config, CredentialConfig};

/// The fields notif reads from a Google service-account JSON file.
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

pub(crate) fn build_gateways(
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
