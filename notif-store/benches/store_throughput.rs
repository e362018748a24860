//! Store throughput, as ratios to baselines measured in the same run.
//!
//! - sled (the default): create-with-3-jobs through `SledStore` at 1 and 64 concurrent
//!   writers, against raw sled writing the same keys and bytes (one batch + `flush()` per
//!   write, on the blocking pool) at the same concurrency.
//! - `postgres`: create-with-3-jobs through `PostgresStore` at 1 and 64 writers, against plain
//!   tokio-postgres inserting the same rows in one transaction per create over the same number
//!   of connections; and lease + settle throughput against a bare `FOR UPDATE SKIP LOCKED`
//!   loop over the same table. On the tests' throw-away PostgreSQL (loopback, `fsync=off`).
//!
//! Run with `cargo bench -p notif-store [-- postgres] [--quick]`. Prints the median of
//! several rounds (with p99 latencies) and a JSON line.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use notif_core::delivery::{DeliveryState, Settlement};
use notif_core::feed::FeedOp;
use notif_core::ids::{AppId, ClientId, HostName, NotificationId, SubscriptionId, UserId};
use notif_core::notification::{
    DraftContext, FeedKey, Limits, NotificationDraft, VisualContentDraft,
};
use notif_core::ports::DeliveryQueue as _;
use notif_core::subscription::{PushChannel, Subscription};
use notif_core::time::Timestamp;
use notif_store::contract::{StorePorts, TestPostgres};
use notif_store::{EventDelivery, PostgresConfig, PostgresStore, SledStore};

const NOW: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);
const ROUND: Duration = Duration::from_millis(1_500);
const ROUNDS: usize = 3;
/// Keys one create-with-3-jobs writes: notification, change, appNotificationId and expiry
/// entries, feed counters, and per job a job and a due entry (a new job is its own status).
const RAW_KEYS: [usize; 11] = [240, 16, 16, 0, 24, 48, 0, 48, 0, 48, 0];
/// Connections on both sides of the PostgreSQL comparison.
const POOL: usize = 16;
/// Jobs leased per batch in the queue comparison.
const LEASE_BATCH: usize = 64;

fn quick() -> bool {
    std::env::args().any(|argument| argument == "--quick")
}

fn feed(writer: u64) -> FeedKey {
    FeedKey {
        app: AppId::new("demo").unwrap(),
        user: UserId::new(format!("user{writer}")).unwrap(),
    }
}

/// A throughput and the 99th percentile of its operations' latencies.
#[derive(Debug, Clone, Copy)]
struct Rate {
    per_second: f64,
    p99: Duration,
}

/// Runs `operation(writer, number)` from `writers` tasks for one round.
async fn measure<F, Fut>(writers: u64, operation: F) -> Rate
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let operation = Arc::new(operation);
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + ROUND;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (operation, counter) = (operation.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let number = counter.fetch_add(1, Ordering::Relaxed);
                let begun = Instant::now();
                operation(writer, number).await;
                latencies.push(begun.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    let p99 = latencies
        .get((latencies.len().saturating_sub(1) as f64 * 0.99) as usize)
        .copied()
        .unwrap_or_default();
    Rate {
        per_second: latencies.len() as f64 / started.elapsed().as_secs_f64(),
        p99,
    }
}

/// Gives each writer's user three Android devices.
async fn subscribe_writers(store: &dyn StorePorts, writers: u64) {
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
}

/// Creates notification `number` in `writer`'s feed: three jobs.
async fn create(store: &dyn StorePorts, writer: u64, number: u64) {
    let host = HostName::new("graphnotifications.sample.windows.com").unwrap();
    let feed = feed(writer);
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

async fn create_round(store: Arc<dyn StorePorts>, writers: u64) -> Rate {
    subscribe_writers(store.as_ref(), writers).await;
    measure(writers, move |writer, number| {
        let store = store.clone();
        async move { create(store.as_ref(), writer, number).await }
    })
    .await
}

async fn sled_round(writers: u64) -> Rate {
    let directory = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(directory.path()).unwrap());
    create_round(store, writers).await
}

async fn raw_sled_round(writers: u64) -> Rate {
    let directory = tempfile::tempdir().unwrap();
    let db = sled::open(directory.path()).unwrap();
    let tree = db.open_tree("raw").unwrap();
    measure(writers, move |_, number| {
        let (db, tree) = (db.clone(), tree.clone());
        async move {
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
    })
    .await
}

/// A PostgreSQL store on a fresh schema, and its URL.
async fn postgres_store() -> (Arc<PostgresStore>, String) {
    let url = tokio::task::spawn_blocking(|| TestPostgres::shared().fresh_url())
        .await
        .unwrap();
    let config = PostgresConfig {
        pool_size: POOL,
        events: EventDelivery::Poll,
        ..PostgresConfig::new(url.clone())
    };
    (Arc::new(PostgresStore::open(&config).await.unwrap()), url)
}

/// A pool of plain connections to `url`, for the baselines.
fn raw_pool(url: &str) -> deadpool_postgres::Pool {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    deadpool_postgres::Pool::builder(manager)
        .max_size(POOL)
        .build()
        .unwrap()
}

async fn postgres_round(writers: u64) -> Rate {
    let (store, _) = postgres_store().await;
    create_round(store, writers).await
}

/// The rows a create-with-3-jobs writes — the feed's counters, the notification, its
/// appNotificationId and three jobs (a new job is its own status), with records of the
/// store's sizes — in one transaction of plain statements.
async fn raw_postgres_round(writers: u64) -> Rate {
    let (store, url) = postgres_store().await;
    drop(store);
    let pool = raw_pool(&url);
    measure(writers, move |writer, number| {
        let pool = pool.clone();
        async move {
            let mut client = pool.get().await.unwrap();
            let transaction = client.transaction().await.unwrap();
            let user = format!("user{writer}");
            let id = uuid::Uuid::from_u64_pair(1, number);
            transaction
                .query_one(
                    "INSERT INTO notif_feeds (app, usr) VALUES ('demo', $1) ON CONFLICT (app, usr) \
                     DO UPDATE SET last_seq = notif_feeds.last_seq + 1, unread = notif_feeds.unread + 1 \
                     RETURNING last_seq",
                    &[&user],
                )
                .await
                .unwrap();
            let seq = i64::try_from(number).unwrap();
            transaction
                .execute(
                    "INSERT INTO notif_notifications (app, usr, id, change_seq, group_name, expiration, record) \
                     VALUES ('demo', $1, $2, $3, NULL, $4, $5)",
                    &[&user, &id, &seq, &i64::MAX, &vec![7u8; RAW_KEYS[0]]],
                )
                .await
                .unwrap();
            transaction
                .execute(
                    "INSERT INTO notif_app_ids (app, usr, app_notification_id, id) VALUES ('demo', $1, $2, $3)",
                    &[&user, &format!("n{number}"), &id],
                )
                .await
                .unwrap();
            let subscriptions: Vec<uuid::Uuid> =
                (0..3u64).map(|device| uuid::Uuid::from_u64_pair(writer, device)).collect();
            let ids = vec![id; 3];
            let dues = vec![0i64; 3];
            let jobs = vec![vec![7u8; RAW_KEYS[5]]; 3];
            transaction
                .execute(
                    "INSERT INTO notif_jobs (notification, subscription, due, record, app, usr) \
                     SELECT *, 'demo', $5 FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bytea[])",
                    &[&ids, &subscriptions, &dues, &jobs, &user],
                )
                .await
                .unwrap();
            transaction.commit().await.unwrap();
        }
    })
    .await
}

/// Jobs the queue rounds drain.
fn queue_jobs() -> u64 {
    if quick() { 3_000 } else { 9_000 }
}

/// A store with [`queue_jobs`] due jobs, written through the store (64 users, 3 devices).
async fn filled_queue() -> (Arc<PostgresStore>, String) {
    let (store, url) = postgres_store().await;
    subscribe_writers(store.as_ref(), 64).await;
    let creates = queue_jobs() / 3;
    let mut tasks = Vec::new();
    for writer in 0..64u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut number = writer;
            while number < creates {
                create(store.as_ref(), writer, number).await;
                number += 64;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (store, url)
}

/// Jobs per second through the store's lease and settle, batches of [`LEASE_BATCH`].
async fn queue_round() -> f64 {
    let (store, _) = filled_queue().await;
    let started = Instant::now();
    let mut done = 0usize;
    loop {
        let leased = store
            .lease_due(NOW, LEASE_BATCH, Duration::from_secs(30))
            .await
            .unwrap();
        if leased.is_empty() {
            break;
        }
        done += leased.len();
        let delivered = Settlement::Done(DeliveryState::Delivered {
            at: NOW,
            text_shortened: false,
        });
        let settlements = leased
            .into_iter()
            .map(|leased| (leased.job, delivered.clone()))
            .collect();
        store.settle(settlements, NOW).await.unwrap();
    }
    assert_eq!(done as u64, queue_jobs() / 3 * 3);
    done as f64 / started.elapsed().as_secs_f64()
}

/// Jobs per second through a bare loop over the same table: lease a batch with
/// `FOR UPDATE SKIP LOCKED` (moving its due time), then delete it.
async fn raw_queue_round() -> f64 {
    let (store, url) = filled_queue().await;
    drop(store);
    let pool = raw_pool(&url);
    let started = Instant::now();
    let mut done = 0usize;
    loop {
        let mut client = pool.get().await.unwrap();
        let transaction = client.transaction().await.unwrap();
        let leased = transaction
            .query(
                "UPDATE notif_jobs SET due = $2 WHERE (notification, subscription) IN \
                   (SELECT notification, subscription FROM notif_jobs WHERE due <= $1 \
                    ORDER BY due LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING notification, subscription",
                &[
                    &NOW.unix_millis(),
                    &(NOW.unix_millis() + 30_000),
                    &i64::try_from(LEASE_BATCH).unwrap(),
                ],
            )
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        if leased.is_empty() {
            break;
        }
        done += leased.len();
        let notifications: Vec<uuid::Uuid> = leased.iter().map(|row| row.get(0)).collect();
        let subscriptions: Vec<uuid::Uuid> = leased.iter().map(|row| row.get(1)).collect();
        let transaction = client.transaction().await.unwrap();
        transaction
            .execute(
                "DELETE FROM notif_jobs j USING unnest($1::uuid[], $2::uuid[]) AS k(n, s) \
                 WHERE j.notification = k.n AND j.subscription = k.s",
                &[&notifications, &subscriptions],
            )
            .await
            .unwrap();
        transaction.commit().await.unwrap();
    }
    done as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median_rate(rates: &[Rate]) -> Rate {
    let per_second = median(rates.iter().map(|rate| rate.per_second).collect());
    let p99 = Duration::from_secs_f64(median(
        rates.iter().map(|rate| rate.p99.as_secs_f64()).collect(),
    ));
    Rate { per_second, p99 }
}

/// Compares `store` with `baseline` at 1 and 64 writers, interleaved so drift in the
/// machine's speed hits both alike; prints the medians and returns the JSON results.
fn compare_creates<S, B, SF, BF>(
    runtime: &tokio::runtime::Runtime,
    label: &str,
    baseline_label: &str,
    store: S,
    baseline: B,
) -> Vec<String>
where
    S: Fn(u64) -> SF,
    B: Fn(u64) -> BF,
    SF: Future<Output = Rate>,
    BF: Future<Output = Rate>,
{
    let rounds = if quick() { 1 } else { ROUNDS };
    let mut summary = Vec::new();
    for writers in [1u64, 64] {
        let mut store_rates = Vec::new();
        let mut baseline_rates = Vec::new();
        for _ in 0..rounds {
            baseline_rates.push(runtime.block_on(baseline(writers)));
            store_rates.push(runtime.block_on(store(writers)));
        }
        let (ours, theirs) = (median_rate(&store_rates), median_rate(&baseline_rates));
        let ratio = ours.per_second / theirs.per_second;
        println!(
            "{label} create-with-3-jobs, {writers:>2} writers: {:>8.0}/s (p99 {:>6.1} ms)   \
             {baseline_label}: {:>8.0}/s (p99 {:>6.1} ms)   ratio {ratio:.2}",
            ours.per_second,
            ours.p99.as_secs_f64() * 1e3,
            theirs.per_second,
            theirs.p99.as_secs_f64() * 1e3,
        );
        summary.push(format!(
            "{{\"writers\":{writers},\"store_per_s\":{:.0},\"store_p99_ms\":{:.2},\"baseline_per_s\":{:.0},\"baseline_p99_ms\":{:.2},\"ratio\":{ratio:.3}}}",
            ours.per_second,
            ours.p99.as_secs_f64() * 1e3,
            theirs.per_second,
            theirs.p99.as_secs_f64() * 1e3,
        ));
    }
    summary
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if std::env::args().any(|argument| argument == "postgres") {
        let creates = compare_creates(
            &runtime,
            "postgres",
            "plain tokio-postgres",
            postgres_round,
            raw_postgres_round,
        );
        let rounds = if quick() { 1 } else { ROUNDS };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            theirs.push(runtime.block_on(raw_queue_round()));
            ours.push(runtime.block_on(queue_round()));
        }
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "postgres lease+settle (batches of {LEASE_BATCH}): {ours:>8.0} jobs/s   bare SKIP LOCKED loop: {theirs:>8.0} jobs/s   ratio {:.2}",
            ours / theirs
        );
        println!(
            "{{\"scenario\":\"postgres\",\"creates\":[{}],\"queue\":{{\"store_jobs_per_s\":{ours:.0},\"baseline_jobs_per_s\":{theirs:.0},\"ratio\":{:.3}}}}}",
            creates.join(","),
            ours / theirs
        );
        return;
    }
    let summary = compare_creates(
        &runtime,
        "sled",
        "raw sled batch+flush",
        sled_round,
        raw_sled_round,
    );
    println!(
        "{{\"scenario\":\"store\",\"results\":[{}]}}",
        summary.join(",")
    );
}
