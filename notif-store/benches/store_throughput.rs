//! Store throughput: create-with-3-jobs through `SledStore` at 1 and 64 concurrent writers,
//! as a ratio to raw sled writing the same keys and bytes (one batch + `flush()` per write,
//! on the blocking pool) at the same concurrency, measured in the same run.
//!
//! Run with `cargo bench -p notif-store`. Prints the median of several rounds and a JSON line.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use notif_core::feed::FeedOp;
use notif_core::ids::{AppId, ClientId, HostName, NotificationId, SubscriptionId, UserId};
use notif_core::notification::{
    DraftContext, FeedKey, Limits, NotificationDraft, VisualContentDraft,
};
use notif_core::ports::{NotificationStore, StoreAdmin as _, SubscriptionStore};
use notif_core::subscription::{PushChannel, Subscription};
use notif_core::time::Timestamp;
use notif_store::SledStore;

const NOW: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);
const ROUND: Duration = Duration::from_millis(1_500);
const ROUNDS: usize = 3;
/// Keys one create-with-3-jobs writes: notification, change, appNotificationId and expiry
/// entries, feed counters, and per job a job, a due entry and a status.
const RAW_KEYS: [usize; 14] = [240, 16, 16, 0, 24, 48, 0, 24, 48, 0, 24, 48, 0, 24];

fn quick() -> bool {
    std::env::args().any(|argument| argument == "--quick")
}

fn feed(writer: u64) -> FeedKey {
    FeedKey {
        app: AppId::new("demo").unwrap(),
        user: UserId::new(format!("user{writer}")).unwrap(),
    }
}

async fn store_round(writers: u64) -> f64 {
    let directory = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(directory.path()).unwrap());
    for writer in 0..writers {
        for device in 0..3u8 {
            let subscription = Subscription {
                id: SubscriptionId::from_parts(writer, [device; 10]),
                feed: feed(writer),
                client_id: ClientId::new("device").unwrap(),
                channel: PushChannel::Fcm {
                    registration_token: format!("token-{writer}-{device}"),
                },
                created_at: NOW,
                expires_at: NOW.saturating_add(Duration::from_secs(86_400)),
            };
            store.subscribe(subscription, 100).await.unwrap();
        }
    }
    let host = HostName::new("graphnotifications.sample.windows.com").unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + ROUND;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (store, counter, host) = (store.clone(), counter.clone(), host.clone());
        tasks.push(tokio::spawn(async move {
            let feed = feed(writer);
            while Instant::now() < deadline {
                let number = counter.fetch_add(1, Ordering::Relaxed);
                let mut random = [0u8; 10];
                random[2..].copy_from_slice(&number.to_be_bytes());
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
                            feed: &feed,
                            app_host: &host,
                            now: NOW,
                            limits: &Limits::default(),
                        },
                    )
                    .unwrap();
                let write = store
                    .write(&feed, FeedOp::Upsert(Box::new(notification)), NOW)
                    .await
                    .unwrap();
                assert_eq!(write.jobs.len(), 3);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rate = counter.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    Arc::try_unwrap(store).unwrap().close().await.unwrap();
    rate
}

async fn raw_sled_round(writers: u64) -> f64 {
    let directory = tempfile::tempdir().unwrap();
    let db = sled::open(directory.path()).unwrap();
    let tree = db.open_tree("raw").unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + ROUND;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (db, tree, counter) = (db.clone(), tree.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let number = counter.fetch_add(1, Ordering::Relaxed);
                let (db, tree) = (db.clone(), tree.clone());
                tokio::task::spawn_blocking(move || {
                    let mut batch = sled::Batch::default();
                    for (index, size) in RAW_KEYS.iter().enumerate() {
                        let mut key = number.to_be_bytes().to_vec();
                        key.extend_from_slice(&[0; 32]);
                        key.push(u8::try_from(index).unwrap());
                        batch.insert(key, vec![7u8; *size]);
                    }
                    tree.apply_batch(batch).unwrap();
                    db.flush().unwrap();
                })
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    counter.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rounds = if quick() { 1 } else { ROUNDS };
    let mut summary = Vec::new();
    for writers in [1u64, 64] {
        let mut store_rates = Vec::new();
        let mut raw_rates = Vec::new();
        // Interleaved, so drift in the machine's speed hits both sides alike.
        for _ in 0..rounds {
            raw_rates.push(runtime.block_on(raw_sled_round(writers)));
            store_rates.push(runtime.block_on(store_round(writers)));
        }
        let (store, raw) = (median(store_rates), median(raw_rates));
        println!(
            "store create-with-3-jobs, {writers:>2} writers: {store:>9.0}/s   raw sled batch+flush: {raw:>9.0}/s   ratio {:.2}",
            store / raw
        );
        summary.push(format!(
            "{{\"writers\":{writers},\"store_per_s\":{store:.0},\"raw_sled_per_s\":{raw:.0},\"ratio\":{:.3}}}",
            store / raw
        ));
    }
    println!(
        "{{\"scenario\":\"store\",\"results\":[{}]}}",
        summary.join(",")
    );
}
