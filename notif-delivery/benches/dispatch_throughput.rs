//! Dispatcher throughput: pushes/s from the durable queue through `FcmGateway` to the loopback
//! sandbox, as a ratio to a bare reqwest client sending the identical requests to the same
//! sandbox at the same concurrency, measured in the same run.
//!
//! Run with `cargo bench -p notif-delivery` (add `-- --quick` for one short round).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use notif_core::feed::FeedOp;
use notif_core::ids::{AppId, ClientId, HostName, NotificationId, SubscriptionId, UserId};
use notif_core::notification::{
    DraftContext, FeedKey, Limits, NotificationDraft, VisualContentDraft,
};
use notif_core::ports::{Clock, NotificationStore, SubscriptionStore};
use notif_core::subscription::{PushChannel, Subscription};
use notif_delivery::sandbox::SandboxProviders;
use notif_delivery::{Dispatcher, DispatcherConfig, FcmGateway, Gateways, HttpConfig, SystemClock};
use notif_store::MemoryStore;
use tokio::sync::Semaphore;

const CONCURRENCY: usize = 64;
const DEVICES: u64 = 50;

fn feed() -> FeedKey {
    FeedKey {
        app: AppId::new("demo").unwrap(),
        user: UserId::new("alice").unwrap(),
    }
}

async fn dispatcher_round(sandbox: &SandboxProviders, notifications: u64, round: u64) -> f64 {
    let store = Arc::new(MemoryStore::new());
    let now = SystemClock.now();
    for device in 0..DEVICES {
        let subscription = Subscription {
            id: SubscriptionId::from_parts(device + 1, [1; 10]),
            feed: feed(),
            client_id: ClientId::new("demo-client").unwrap(),
            channel: PushChannel::Fcm {
                registration_token: format!("device-{device}"),
            },
            created_at: now,
            expires_at: now.saturating_add(Duration::from_secs(3_600)),
        };
        store.subscribe(subscription, 1_000).await.unwrap();
    }
    let host = HostName::new("graphnotifications.sample.windows.com").unwrap();
    for number in 0..notifications {
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&(round << 32 | number).to_be_bytes());
        let draft = NotificationDraft {
            target_host_name: Some(host.to_string()),
            app_notification_id: Some(format!("n{number}")),
            visual_content: Some(VisualContentDraft {
                title: Some("Hello World!".into()),
                body: Some("Notifications are Great!".into()),
            }),
            ..NotificationDraft::default()
        };
        let notification = draft
            .validate(
                NotificationId::from_parts(1, random),
                DraftContext {
                    feed: &feed(),
                    app_host: &host,
                    now,
                    limits: &Limits::default(),
                },
            )
            .unwrap();
        store
            .write(&feed(), FeedOp::Upsert(Box::new(notification)), now)
            .await
            .unwrap();
    }
    let mut gateways = Gateways::new();
    let gateway = Arc::new(FcmGateway::new(sandbox.fcm_config(HttpConfig::default())).unwrap());
    gateways.add([AppId::new("demo").unwrap()], gateway, CONCURRENCY);
    // The jobs are written before the dispatcher starts: it finds them on its first lease.
    let events = notif_store::LocalEvents::new();
    let dispatcher = Dispatcher::new(
        store,
        gateways,
        Arc::new(SystemClock),
        DispatcherConfig::default(),
        notif_core::ports::FeedEvents::watch_jobs(events.as_ref()),
    );
    let stats = dispatcher.stats();
    let expected = notifications * DEVICES;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stopped.await;
    }));
    while stats.total(notif_delivery::AttemptOutcome::Delivered) < expected {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = expected as f64 / started.elapsed().as_secs_f64();
    stop.send(()).unwrap();
    running.await.unwrap();
    rate
}

async fn bare_round(sandbox: &SandboxProviders, requests: u64) -> f64 {
    let sample = sandbox.pushes().pop().unwrap();
    let client = reqwest::Client::builder().build().unwrap();
    let url = format!("{}{}", sandbox.base_url(), sample.path);
    let authorization = sample.headers["authorization"].clone();
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..requests {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (client, url, authorization, body) = (
            client.clone(),
            url.clone(),
            authorization.clone(),
            sample.body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .header("authorization", authorization)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            let _ = response.bytes().await;
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    requests as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|argument| argument == "--quick");
    let (rounds, notifications) = if quick { (1, 20) } else { (3, 80) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dispatcher, bare) = runtime.block_on(async {
        let sandbox = SandboxProviders::start().await.unwrap();
        let mut dispatcher_rates = Vec::new();
        let mut bare_rates = Vec::new();
        for round in 0..rounds {
            dispatcher_rates.push(dispatcher_round(&sandbox, notifications, round).await);
            bare_rates.push(bare_round(&sandbox, notifications * DEVICES).await);
        }
        (median(dispatcher_rates), median(bare_rates))
    });
    println!(
        "dispatcher: {dispatcher:>8.0} pushes/s   bare reqwest: {bare:>8.0} requests/s   ratio {:.2}",
        dispatcher / bare
    );
    println!(
        "{{\"scenario\":\"delivery\",\"dispatcher_pushes_per_s\":{dispatcher:.0},\"bare_reqwest_per_s\":{bare:.0},\"ratio\":{:.3}}}",
        dispatcher / bare
    );
}
