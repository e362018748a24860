//! `notifctl demo`: the seed's whole flow against a notifd on development defaults, step by
//! step, and the HTTP helpers `sign-in` shares.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use notif_delivery::P256Key;
use notif_delivery::sandbox::SandboxProviders;
use notif_grpc::pb;
use serde_json::{Value, json};

const STEPS: usize = 8;
const WAIT: Duration = Duration::from_secs(30);

/// Development sign-in: a user token on a device client.
pub(crate) async fn sign_in(
    http: &reqwest::Client,
    server: &str,
    client: &str,
    user: &str,
) -> anyhow::Result<String> {
    let response: Value = http
        .post(format!("{server}/dev/sign-in"))
        .form(&[("client_id", client), ("user", user)])
        .send()
        .await
        .with_context(|| format!("cannot reach notifd at {server}"))?
        .json()
        .await
        .context("the sign-in answer is not JSON")?;
    token_from(&response, "development sign-in")
}

/// The app service's on-behalf-of exchange of a user token.
pub(crate) async fn on_behalf_of(
    http: &reqwest::Client,
    server: &str,
    service: &str,
    secret: &str,
    user_token: &str,
) -> anyhow::Result<String> {
    let response: Value = http
        .post(format!("{server}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", notif_auth::JWT_BEARER_GRANT),
            ("client_id", service),
            ("client_secret", secret),
            ("assertion", user_token),
            ("requested_token_use", "on_behalf_of"),
            ("scope", "Notifications.ReadWrite.CreatedByApp"),
        ])
        .send()
        .await
        .with_context(|| format!("cannot reach notifd at {server}"))?
        .json()
        .await
        .context("the token answer is not JSON")?;
    token_from(&response, "on-behalf-of exchange")
}

fn token_from(response: &Value, what: &str) -> anyhow::Result<String> {
    match response["access_token"].as_str() {
        Some(token) => Ok(token.to_owned()),
        None => bail!(
            "{what} refused: {} {}",
            response["error"].as_str().unwrap_or("?"),
            response["error_description"].as_str().unwrap_or_default()
        ),
    }
}

/// A create request from the seed's JSON format.
pub(crate) fn create_request_from_seed(
    body: &Value,
) -> anyhow::Result<pb::CreateNotificationRequest> {
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let number_or_text = |value: &Value| -> anyhow::Result<Option<i64>> {
        match value {
            Value::Null => Ok(None),
            Value::Number(number) => number
                .as_i64()
                .map(Some)
                .context("displayTimeToLive must be whole"),
            Value::String(text) => text
                .parse()
                .map(Some)
                .context("displayTimeToLive must be a number"),
            _ => bail!("displayTimeToLive must be a number"),
        }
    };
    let expiration = match body["expirationDateTime"].as_str() {
        None => None,
        Some(text) => {
            let time = notif_core::time::Timestamp::parse_rfc3339(text)
                .map_err(|error| anyhow::anyhow!("expirationDateTime: {error}"))?;
            Some(prost_types::Timestamp {
                seconds: time.unix_seconds(),
                nanos: 0,
            })
        }
    };
    let visual = &body["payload"]["visualContent"];
    Ok(pb::CreateNotificationRequest {
        target_host_name: text(&body["targetHostName"]).unwrap_or_default(),
        app_notification_id: text(&body["appNotificationId"]).unwrap_or_default(),
        group_name: text(&body["groupName"]),
        visual_content: text(&visual["title"]).map(|title| pb::VisualContent {
            title,
            body: text(&visual["body"]),
        }),
        raw_content: text(&body["payload"]["rawContent"]),
        platform_types: body["targetPolicy"]["platformTypes"]
            .as_array()
            .map(|platforms| platforms.iter().filter_map(text).collect())
            .unwrap_or_default(),
        priority: match &body["priority"] {
            Value::Number(number) => Some(number.to_string()),
            other => text(other),
        },
        display_time_to_live: number_or_text(&body["displayTimeToLive"])?,
        expiration,
        subscription_id: String::new(),
        fallback_policy: body["fallbackPolicy"]
            .as_object()
            .map(|policy| -> anyhow::Result<_> {
                Ok(pb::FallbackPolicyDraft {
                    platform_types: policy
                        .get("platformTypes")
                        .and_then(Value::as_array)
                        .map(|platforms| platforms.iter().filter_map(text).collect())
                        .unwrap_or_default(),
                    fallback_delay_in_seconds: policy
                        .get("fallbackDelayInSeconds")
                        .map(number_or_text)
                        .transpose()?
                        .flatten(),
                })
            })
            .transpose()?,
    })
}

struct Steps {
    current: usize,
}

impl Steps {
    fn start(&mut self, what: &str) {
        self.current += 1;
        print!("[{}/{STEPS}] {what} ... ", self.current);
        let _ = std::io::stdout().flush();
    }
}

fn seed(expiration: &str) -> Value {
    json!({
        "targetHostName": notif_auth::DEMO_HOST,
        "appNotificationId": "testDirectToastNotification",
        "expirationDateTime": expiration,
        "payload": {"visualContent": {"title": "Hello World!", "body": "Notifications are Great!"}},
        "targetPolicy": {"platformTypes": ["windows", "android", "ios", "webpush"]},
        "priority": "High",
        "groupName": "TestGroup",
        "displayTimeToLive": "23"
    })
}

/// The sandbox pushes for `id` with `change`, as (platform, envelope).
async fn sandbox_pushes(
    http: &reqwest::Client,
    server: &str,
    id: &str,
    change: &str,
) -> anyhow::Result<Vec<(String, Value)>> {
    let listing: Value = http
        .get(format!("{server}/dev/sandbox/pushes"))
        .send()
        .await?
        .json()
        .await
        .context("the sandbox listing is not JSON")?;
    Ok(listing["value"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|push| {
            push["envelope"]["id"] == id
                && push["envelope"]["change"] == change
                && push["answered"] == "Accept"
        })
        .map(|push| {
            (
                push["platform"].as_str().unwrap_or("?").to_owned(),
                push["envelope"].clone(),
            )
        })
        .collect())
}

fn web_pushes(receiver: &SandboxProviders, id: &str, change: &str) -> Vec<Value> {
    receiver
        .pushes()
        .into_iter()
        .filter_map(|push| push.envelope)
        .filter(|envelope| envelope["id"] == id && envelope["change"] == change)
        .collect()
}

/// Waits, showing progress, until each of `platforms` received `change` of `id`.
async fn wait_for(
    http: &reqwest::Client,
    server: &str,
    receiver: &SandboxProviders,
    id: &str,
    change: &str,
    platforms: &[&str],
) -> anyhow::Result<Vec<(String, Value)>> {
    let started = Instant::now();
    let spinner = ['|', '/', '-', '\\'];
    let mut turn = 0;
    loop {
        let mut received = sandbox_pushes(http, server, id, change).await?;
        received.extend(
            web_pushes(receiver, id, change)
                .into_iter()
                .map(|envelope| ("WebPush".to_owned(), envelope)),
        );
        let arrived: Vec<&str> = platforms
            .iter()
            .copied()
            .filter(|platform| received.iter().any(|(name, _)| name == platform))
            .collect();
        print!(
            "\r    waiting for pushes {} {}/{}  ",
            spinner[turn % 4],
            arrived.len(),
            platforms.len()
        );
        let _ = std::io::stdout().flush();
        turn += 1;
        if arrived.len() == platforms.len() {
            println!("\r    all {} arrived                 ", platforms.len());
            return Ok(received);
        }
        if started.elapsed() > WAIT {
            println!();
            bail!("only {arrived:?} of {platforms:?} received the {change} push within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the demo.
pub(crate) async fn run(server: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut steps = Steps { current: 0 };

    steps.start("A user signs in on a device: development sign-in of alice on demo-client");
    let device_token = sign_in(&http, server, notif_auth::DEMO_DEVICE_CLIENT, "alice").await?;
    println!("ok");

    steps.start("The app service exchanges alice's token on her behalf (demo-app-service)");
    let service_token = on_behalf_of(
        &http,
        server,
        notif_auth::DEMO_APP_SERVICE_CLIENT,
        notif_auth::DEMO_APP_SERVICE_SECRET,
        &device_token,
    )
    .await?;
    println!("ok: scope Notifications.ReadWrite.CreatedByApp");

    steps.start("Subscribing four devices");
    let sandbox: Value = http
        .get(format!("{server}/dev/sandbox"))
        .send()
        .await?
        .json()
        .await
        .context("notifd is not in development mode (no /dev/sandbox)")?;
    let sandbox_url = sandbox["baseUrl"]
        .as_str()
        .context("notifd is not in development mode")?
        .to_owned();
    let receiver = SandboxProviders::start()
        .await
        .context("starting the Web Push receiver")?;
    let P256Key {
        private_key: browser_key,
        public_key: browser_public,
    } = P256Key::generate();
    let browser_auth: Vec<u8> = (0..16u8).collect();
    receiver.register_web_push_keys("demo-browser", browser_key, browser_auth.clone());
    let devices = [
        json!({"platform": "windows", "channelUri": format!("{sandbox_url}/wns/demo-windows")}),
        json!({"platform": "android", "registrationToken": "demo-android-registration-token"}),
        json!({"platform": "iOS", "deviceToken": "a1".repeat(32), "topic": "com.example.demo", "environment": "sandbox"}),
        json!({
            "platform": "webPush",
            "endpoint": receiver.web_push_endpoint("demo-browser"),
            "keys": {"p256dh": URL_SAFE_NO_PAD.encode(browser_public), "auth": URL_SAFE_NO_PAD.encode(&browser_auth)},
        }),
    ];
    println!();
    for device in &devices {
        let response = http
            .post(format!("{server}/me/notifications/subscriptions"))
            .bearer_auth(&device_token)
            .json(device)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("subscribing {} failed: {body}", device["platform"]);
        }
        println!(
            "    {:<8} subscription {}",
            body["platform"].as_str().unwrap_or("?"),
            body["id"].as_str().unwrap_or("?")
        );
    }
    println!(
        "    (Windows, Android and iOS on notifd's sandbox providers; Web Push on this demo's own receiver)"
    );

    steps.start("The app service posts the seed notification: POST /beta/me/notifications");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(0));
    let expiration = notif_core::time::Timestamp::from_unix_millis(now + 86_400_000).to_rfc3339();
    let response = http
        .post(format!("{server}/beta/me/notifications"))
        .bearer_auth(&service_token)
        .json(&seed(&expiration))
        .send()
        .await?;
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let created: Value = response.json().await?;
    if !status.is_success() {
        bail!("the create was refused: {created}");
    }
    println!("HTTP {status}");
    println!("    Location: {location}");
    for line in serde_json::to_string_pretty(&created)?.lines() {
        println!("    {line}");
    }
    println!(
        "    (the seed's fields; targetPolicy lists all four platforms and the expiration is tomorrow)"
    );
    let id = created["id"]
        .as_str()
        .context("the response has no id")?
        .to_owned();

    steps.start("Each provider receives it");
    println!();
    let received = wait_for(
        &http,
        server,
        &receiver,
        &id,
        "created",
        &["Windows", "Android", "iOS", "WebPush"],
    )
    .await?;
    for (platform, envelope) in &received {
        let title = envelope["payload"]["visualContent"]["title"]
            .as_str()
            .unwrap_or("(shoulder tap)");
        let source = if platform == "WebPush" {
            "decrypted by the demo"
        } else {
            "notifd sandbox"
        };
        println!(
            "    {platform:<8} \"{title}\" changeSeq {} ({source})",
            envelope["changeSeq"]
        );
    }

    steps.start("Alice reads it on one device: PATCH readState=read");
    let patched = http
        .patch(format!("{server}/me/notifications/{id}"))
        .bearer_auth(&device_token)
        .json(&json!({"readState": "read"}))
        .send()
        .await?;
    if !patched.status().is_success() {
        bail!(
            "marking read failed: {}",
            patched.text().await.unwrap_or_default()
        );
    }
    println!("ok");
    let synced = wait_for(
        &http,
        server,
        &receiver,
        &id,
        "state",
        &["Windows", "Android", "iOS"],
    )
    .await?;
    for (platform, envelope) in &synced {
        println!(
            "    {platform:<8} state sync: readState {} changeSeq {}",
            envelope["readState"], envelope["changeSeq"]
        );
    }
    if !web_pushes(&receiver, &id, "state").is_empty() {
        bail!("the browser received a state sync; it must not");
    }
    println!("    WebPush  no push (browsers learn state changes from the feed)");

    steps.start("The app service deletes it: DELETE /me/notifications/{id}");
    let deleted = http
        .delete(format!("{server}/me/notifications/{id}"))
        .bearer_auth(&service_token)
        .send()
        .await?;
    if deleted.status() != reqwest::StatusCode::NO_CONTENT {
        bail!("delete failed: {}", deleted.status());
    }
    println!("204 No Content");
    wait_for(
        &http,
        server,
        &receiver,
        &id,
        "deleted",
        &["Windows", "Android", "iOS"],
    )
    .await?;

    steps.start("Done");
    println!("every step did what it should");
    Ok(())
}
