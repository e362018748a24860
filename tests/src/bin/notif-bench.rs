//! `notif-bench`: performance as ratios against baselines measured in the same run.
//!
//! Scenarios (all by default, or name some): `grpc` (on sled, then on PostgreSQL: gRPC
//! create-and-fan-out vs the same traffic sent bare — the empty call and the three pushes,
//! with and without the create's durable write —, creates for users without devices vs an
//! empty unary handler and vs the empty call plus the durable write alone, the same creates as
//! Graph JSON over HTTP vs gRPC, and PostgreSQL's figures vs sled's), `store`, `postgres` and
//! `delivery` (the crates' own benches, run and collected: `postgres` is create-with-3-jobs
//! and lease+settle through `PostgresStore` against plain tokio-postgres and a bare `SKIP
//! LOCKED` loop on a throw-away PostgreSQL), `feed` (list and changes-since latency at 1,000
//! vs 100,000 notifications), `memory` (idle RSS of notifd and growth per 100,000 pending
//! jobs), `latency` (p99 create latency at half the maximum throughput). `--quick` shortens
//! every scenario. Writes `target/notif-bench.json`.
//!
//! Not run by default: `store-workload [--settle]`, a fixed workload for instruction counts
//! that do not depend on the machine's noise, to run under callgrind (`valgrind
//! --tool=callgrind target/release/notif-bench store-workload`): 1,000 creates with three jobs
//! each into a fresh sled store, one at a time; with `--settle`, then their leases and
//! settlements. Read the store writer thread's count (`run_writer`, inclusive): sled's I/O
//! threads spin while they wait, so the program's total grows with the time it ran.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::print_stderr)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use notif_core::delivery::{DeliveryState, Settlement};
use notif_core::feed::FeedOp;
use notif_core::ids::{AppId, ClientId, HostName, NotificationId, SubscriptionId, UserId};
use notif_core::notification::{
    ChangeSeq, DraftContext, FeedKey, Limits, NotificationDraft, VisualContentDraft,
};
use notif_core::platform::Platform;
use notif_core::ports::{
    DeliveryQueue as _, ListQuery, NotificationStore, StoreAdmin as _, SubscriptionStore as _,
};
use notif_core::subscription::{PushChannel, Subscription};
use notif_core::time::Timestamp;
use notif_grpc::RateLimits;
use notif_grpc::pb;
use notif_tests::{DEMO_HOST, TestServer, TestStore, test_config_on};
use serde_json::{Value, json};
use tonic::transport::Channel;

const CONCURRENCY: usize = 64;

struct Settings {
    quick: bool,
}

impl Settings {
    fn round(&self) -> Duration {
        if self.quick {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(5)
        }
    }

    fn rounds(&self) -> usize {
        if self.quick { 1 } else { 3 }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

struct Load {
    calls: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `call` from `CONCURRENCY` tasks for `duration`, optionally paced to `rate` calls/s.
async fn load<F, Fut>(duration: Duration, rate: Option<f64>, call: F) -> Load
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let call = Arc::clone(&call);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let interval = rate.map(|rate| Duration::from_secs_f64(CONCURRENCY as f64 / rate));
            // Paced workers start staggered across one interval, so calls arrive evenly
            // spread at the rate rather than in bursts of `CONCURRENCY`.
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |interval| {
                    interval.mul_f64(worker as f64 / CONCURRENCY as f64)
                });
            let mut number = 0u64;
            while started.elapsed() < duration {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += interval;
                }
                let begun = Instant::now();
                call(worker, number).await;
                latencies.push(begun.elapsed());
                number += 1;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    Load {
        calls: latencies.len(),
        per_second: latencies.len() as f64 / elapsed,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

/// The platforms of the devices each bench user has.
const DEVICES: [&str; 3] = ["windows", "android", "ios"];

/// A server on `store` with `CONCURRENCY` users, each with a device on each of `platforms`,
/// and their tokens.
async fn bench_server(store: TestStore, platforms: &[&str]) -> (TestServer, Vec<String>) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = test_config_on(data_dir.path(), store);
    // What notifd runs with by default (the tests use fewer connections).
    config.store.pool_size = notif_grpc::Config::default().store.pool_size;
    config.rate_limits = RateLimits {
        per_app_per_second: 1e9,
        per_app_burst: 1e9,
        per_user_per_second: 1e9,
        per_user_burst: 1e9,
    };
    let server = TestServer::start_with(config, data_dir).await;
    let mut tokens = Vec::new();
    for user in 0..CONCURRENCY {
        let token = server.sign_in("demo-client", &format!("user{user}")).await;
        for platform in platforms {
            server
                .subscribe(&token, platform, &format!("u{user}-{platform}"))
                .await;
        }
        tokens.push(token);
    }
    (server, tokens)
}

/// HTTP/2 connections the clients share (four clients per connection). With only four, the
/// empty-handler baseline swung between ~45,000 and ~80,000 calls/s from run to run, with
/// where the connections' tasks landed on the runtime's two workers.
const CONNECTIONS: usize = 16;

async fn channels(server: &TestServer) -> Vec<Channel> {
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(
            Channel::from_shared(server.base_url.clone())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    channels
}

async fn grpc_creates(
    server: &TestServer,
    tokens: &[String],
    duration: Duration,
    rate: Option<f64>,
    round: usize,
) -> Load {
    let channels = channels(server).await;
    let tokens = tokens.to_vec();
    load(duration, rate, move |worker, number| {
        let channel = channels[worker % channels.len()].clone();
        let token = tokens[worker].clone();
        async move {
            let mut client = pb::notifications_client::NotificationsClient::new(channel);
            let mut request = tonic::Request::new(pb::CreateNotificationRequest {
                target_host_name: DEMO_HOST.into(),
                app_notification_id: format!("r{round}-w{worker}-n{number}"),
                visual_content: Some(pb::VisualContent {
                    title: "Hello World!".into(),
                    body: Some("Notifications are Great!".into()),
                }),
                ..Default::default()
            });
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            client.create_notification(request).await.unwrap();
        }
    })
    .await
}

/// The same creates as [`grpc_creates`], as Graph JSON over HTTP/1.1 (`POST
/// /beta/me/notifications`), from as many keep-alive connections as clients.
async fn http_creates(
    server: &TestServer,
    tokens: &[String],
    duration: Duration,
    round: usize,
) -> Load {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let url = server.url("/beta/me/notifications");
    let tokens = tokens.to_vec();
    load(duration, None, move |worker, number| {
        let (http, url, token) = (http.clone(), url.clone(), tokens[worker].clone());
        async move {
            let body = json!({
                "targetHostName": DEMO_HOST,
                "appNotificationId": format!("h{round}-w{worker}-n{number}"),
                "payload": {"visualContent": {"title": "Hello World!", "body": "Notifications are Great!"}},
            });
            let response = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 201);
            let _ = response.bytes().await;
        }
    })
    .await
}

/// One empty unary call: gRPC health `Check`.
async fn empty_call(channel: Channel) {
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    client
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
}

async fn empty_handler(server: &TestServer, duration: Duration) -> Load {
    let channels = channels(server).await;
    load(duration, None, move |worker, _| {
        empty_call(channels[worker % channels.len()].clone())
    })
    .await
}

/// One push as the sandbox received it, to send again as is.
#[derive(Clone)]
struct BarePush {
    client: reqwest::Client,
    url: String,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl BarePush {
    /// The last push to each of `DEVICES`' platforms the sandbox of `server` received, sent
    /// over the same HTTP version as the dispatcher's (HTTP/2 to APNs, HTTP/1.1 elsewhere).
    fn samples(server: &TestServer) -> [Self; DEVICES.len()] {
        let pushes = server.sandbox.pushes();
        let http1 = reqwest::Client::new();
        let http2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        DEVICES.map(|device| {
            let platform = Platform::parse(device).unwrap();
            let push = pushes
                .iter()
                .rev()
                .find(|push| push.platform == platform)
                .unwrap();
            let headers = push
                .headers
                .iter()
                .filter(|(name, _)| !matches!(name.as_str(), "host" | "content-length"))
                .map(|(name, value)| (name.parse().unwrap(), value.parse().unwrap()))
                .collect();
            Self {
                client: if platform == Platform::Ios {
                    http2.clone()
                } else {
                    http1.clone()
                },
                url: format!("{}{}", server.sandbox.base_url(), push.path),
                headers,
                body: push.body.clone(),
            }
        })
    }

    async fn send(self) {
        let response = self
            .client
            .post(self.url)
            .headers(self.headers)
            .body(self.body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let _ = response.bytes().await;
    }
}

/// A create-and-fan-out reduced to its traffic: the empty call (with `durable`, then the
/// create's durable write on that store, [`DurableWrites`]), then the three pushes a create owes sent bare
/// to the same sandbox in the background, at most as many in flight as the
/// dispatcher allows across the three providers (`CONCURRENCY` each) — no store, no auth, no
/// dispatcher. Paced at `rate` calls/s when given. Returns once the last push is answered.
async fn bare_fan_out(
    server: &TestServer,
    duration: Duration,
    rate: Option<f64>,
    durable: Option<TestStore>,
) -> Load {
    let channels = channels(server).await;
    let pushes = BarePush::samples(server);
    let directory = tempfile::tempdir().unwrap();
    let writes = match durable {
        Some(store) => Some(DurableWrites::open(store, directory.path()).await),
        None => None,
    };
    let in_flight = Arc::new(tokio::sync::Semaphore::new(DEVICES.len() * CONCURRENCY));
    let sending = Arc::clone(&in_flight);
    let result = load(duration, rate, move |worker, number| {
        let channel = channels[worker % channels.len()].clone();
        let (pushes, in_flight, writes) = (pushes.clone(), Arc::clone(&sending), writes.clone());
        async move {
            empty_call(channel).await;
            if let Some(writes) = writes {
                writes.write(worker, number).await;
            }
            for push in pushes {
                let permit = Arc::clone(&in_flight).acquire_owned().await.unwrap();
                tokio::spawn(async move {
                    push.send().await;
                    drop(permit);
                });
            }
        }
    })
    .await;
    let all = u32::try_from(DEVICES.len() * CONCURRENCY).unwrap();
    drop(in_flight.acquire_many(all).await.unwrap());
    result
}

/// The durable write a create makes, alone: the same notification written straight into a
/// store of its own on the scenario's engine (one user per client, as in the creates) — no
/// decode, authentication, validation or response.
#[derive(Clone)]
struct DurableWrites {
    store: Arc<dyn NotificationStore>,
    host: HostName,
}

impl DurableWrites {
    async fn open(store: TestStore, directory: &std::path::Path) -> Self {
        let store: Arc<dyn NotificationStore> = match store {
            TestStore::Sled => Arc::new(notif_store::SledStore::open(directory).unwrap()),
            TestStore::Postgres => {
                let url = notif_store::contract::TestPostgres::shared().fresh_url();
                Arc::new(
                    notif_store::PostgresStore::open(&notif_store::PostgresConfig::new(url))
                        .await
                        .unwrap(),
                )
            }
        };
        Self {
            store,
            host: HostName::new(DEMO_HOST).unwrap(),
        }
    }

    async fn write(&self, worker: usize, number: u64) {
        let now = Timestamp::from_unix_millis(4_000_000_000_000);
        let feed = FeedKey {
            app: AppId::new("demo").unwrap(),
            user: UserId::new(format!("user{worker}")).unwrap(),
        };
        let mut random = [0u8; 10];
        random[2..].copy_from_slice(&number.to_be_bytes());
        random[0] = u8::try_from(worker).unwrap_or(u8::MAX);
        let notification = draft(number)
            .validate(
                NotificationId::from_parts(number + 1, random),
                DraftContext {
                    feed: &feed,
                    app_host: &self.host,
                    now,
                    limits: &Limits::default(),
                },
            )
            .unwrap();
        self.store
            .write(&feed, FeedOp::Upsert(Box::new(notification)), now)
            .await
            .unwrap();
    }
}

/// A create without devices reduced to its floor: the empty call, then [`DurableWrites`].
async fn durable_floor(server: &TestServer, store: TestStore, duration: Duration) -> Load {
    let channels = channels(server).await;
    let directory = tempfile::tempdir().unwrap();
    let writes = DurableWrites::open(store, directory.path()).await;
    load(duration, None, move |worker, number| {
        let (channel, writes) = (channels[worker % channels.len()].clone(), writes.clone());
        async move {
            empty_call(channel).await;
            writes.write(worker, number).await;
        }
    })
    .await
}

/// The median calls/s of `settings.rounds()` rounds of `round` (given the round's number).
async fn median_rate<Fut: Future<Output = Load>>(
    settings: &Settings,
    mut round: impl FnMut(usize) -> Fut,
) -> f64 {
    let mut rates = Vec::new();
    for number in 0..settings.rounds() {
        rates.push(round(number).await.per_second);
    }
    median(rates)
}

/// What [`scenario_grpc`] measured on one store.
struct CreateFigures {
    empty_handler: f64,
    fan_out: f64,
    bare: f64,
    /// The bare traffic with the create's durable write.
    bare_durable: f64,
    without_devices: f64,
    http: f64,
    /// The empty call plus the durable write alone.
    floor: f64,
    json: Value,
}

async fn scenario_grpc(settings: &Settings, store: TestStore) -> CreateFigures {
    let name = match store {
        TestStore::Sled => "sled",
        TestStore::Postgres => "postgres",
    };
    let (server, tokens) = bench_server(store, &DEVICES).await;
    let mut creates = Vec::new();
    let mut last = None;
    // The baseline is measured first, on a quiet server: after a round of creates the
    // dispatcher is still delivering their backlog, which would slow the empty handler.
    let baseline = median_rate(settings, |_| empty_handler(&server, settings.round())).await;
    let pushes_before = server.sandbox.received_count();
    let mut planned = 0;
    for round in 0..settings.rounds() {
        let result = grpc_creates(&server, &tokens, settings.round(), None, round).await;
        creates.push(result.per_second);
        planned += DEVICES.len() * result.calls;
        last = Some(result);
    }
    // Pushes that reached the providers while the rounds ran: when the dispatcher falls
    // behind, creates look faster than the fan-out they owe.
    let delivered = server.sandbox.received_count() - pushes_before;
    let delivered_fraction = delivered as f64 / planned as f64;
    let last = last.unwrap();
    let bare = median_rate(settings, |_| {
        bare_fan_out(&server, settings.round(), None, None)
    })
    .await;
    // The same with the create's durable write: the part of the gap the disk explains.
    let bare_durable = median_rate(settings, |_| {
        bare_fan_out(&server, settings.round(), None, Some(store))
    })
    .await;
    let creates = median(creates);
    server.stop().await;
    // The same creates on a fresh server whose users have no devices: what the fan-out costs;
    // and the same again as Graph JSON over HTTP.
    let (server, tokens) = bench_server(store, &[]).await;
    let creates_alone = median_rate(settings, |round| {
        grpc_creates(&server, &tokens, settings.round(), None, round)
    })
    .await;
    let http = median_rate(settings, |round| {
        http_creates(&server, &tokens, settings.round(), round)
    })
    .await;
    // Where the durable write alone puts the ceiling of creates without devices.
    let floor = median_rate(settings, |_| {
        durable_floor(&server, store, settings.round())
    })
    .await;
    server.stop().await;
    println!(
        "grpc ({name}): create-and-fan-out {creates:.0}/s (p50 {:?}, p99 {:?}), {:.0}% of the owed pushes delivered during the rounds, vs the same traffic sent bare {bare:.0}/s: ratio {:.2} (goal 0.8), vs that traffic with the create's durable write {bare_durable:.0}/s: ratio {:.2}; creates for users without devices {creates_alone:.0}/s vs the empty handler {baseline:.0}/s: ratio {:.2} (goal 0.5); the same as Graph JSON over HTTP {http:.0}/s: ratio {:.2} to gRPC (goal 0.8); the empty call plus the same durable write alone {floor:.0}/s: {:.2} of the empty handler, creates reach {:.2} of it",
        last.p50,
        last.p99,
        delivered_fraction * 100.0,
        creates / bare,
        creates / bare_durable,
        creates_alone / baseline,
        http / creates_alone,
        floor / baseline,
        creates_alone / floor,
    );
    let json = json!({"creates_per_s": creates, "p50_ms": last.p50.as_secs_f64() * 1e3, "p99_ms": last.p99.as_secs_f64() * 1e3,
        "pushes_planned": planned, "pushes_delivered_during_rounds": delivered, "delivered_fraction": delivered_fraction,
        "bare_fan_out_per_s": bare, "fan_out_vs_bare": creates / bare, "fan_out_vs_bare_goal": 0.8,
        "bare_durable_fan_out_per_s": bare_durable, "fan_out_vs_bare_durable": creates / bare_durable,
        "empty_handler_per_s": baseline, "fan_out_vs_empty_handler": creates / baseline,
        "creates_without_devices_per_s": creates_alone, "without_devices_vs_empty_handler": creates_alone / baseline, "without_devices_goal": 0.5,
        "http_creates_per_s": http, "http_vs_grpc": http / creates_alone, "http_vs_grpc_goal": 0.8,
        "durable_floor_per_s": floor, "durable_floor_vs_empty_handler": floor / baseline, "without_devices_vs_durable_floor": creates_alone / floor});
    CreateFigures {
        empty_handler: baseline,
        fan_out: creates,
        bare,
        bare_durable,
        without_devices: creates_alone,
        http,
        floor,
        json,
    }
}

/// The PostgreSQL figures beside sled's: each ≥ 0.5× of sled's (the goal); and where
/// PostgreSQL's own durable write puts each — its bare traffic with the write, and the empty
/// call plus the write alone (which bounds creates without devices over gRPC and over HTTP
/// alike) — against the same sled figures: a ceiling below 0.5 means no create on PostgreSQL
/// can reach the goal, whatever surrounds the write.
fn postgres_vs_sled(sled: &CreateFigures, postgres: &CreateFigures) -> Value {
    let ratios = json!({
        "fan_out": postgres.fan_out / sled.fan_out,
        "without_devices": postgres.without_devices / sled.without_devices,
        "http": postgres.http / sled.http,
        "goal": 0.5,
        "fan_out_ceiling": postgres.bare_durable / sled.fan_out,
        "without_devices_ceiling": postgres.floor / sled.without_devices,
        "http_ceiling": postgres.floor / sled.http,
    });
    let ratio = |name: &str| ratios[name].as_f64().unwrap_or_default();
    println!(
        "grpc (postgres vs sled): create-and-fan-out {:.2}, without devices {:.2}, HTTP {:.2} (goal 0.5 each; baselines on PostgreSQL's run: empty handler {:.0}/s, bare traffic {:.0}/s); where PostgreSQL's durable write alone puts them: {:.2}, {:.2}, {:.2}",
        ratio("fan_out"),
        ratio("without_devices"),
        ratio("http"),
        postgres.empty_handler,
        postgres.bare,
        ratio("fan_out_ceiling"),
        ratio("without_devices_ceiling"),
        ratio("http_ceiling"),
    );
    ratios
}

async fn scenario_latency(settings: &Settings, max_throughput: f64) -> Value {
    let (server, tokens) = bench_server(TestStore::Sled, &DEVICES).await;
    let rate = max_throughput / 2.0;
    // A warm-up second at the rate opens the provider connections and fetches their tokens.
    grpc_creates(&server, &tokens, Duration::from_secs(1), Some(rate), 100).await;
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    // The same traffic sent bare at the same rate, without and with the create's durable
    // write: what the machine's loopback and its disk alone add to the tail.
    let mut bare_p99s = Vec::new();
    let mut bare_durable_p99s = Vec::new();
    for round in 0..settings.rounds() {
        let result =
            grpc_creates(&server, &tokens, settings.round(), Some(rate), 101 + round).await;
        p50s.push(result.p50.as_secs_f64() * 1e3);
        p99s.push(result.p99.as_secs_f64() * 1e3);
        let bare = bare_fan_out(&server, settings.round(), Some(rate), None).await;
        bare_p99s.push(bare.p99.as_secs_f64() * 1e3);
        let durable =
            bare_fan_out(&server, settings.round(), Some(rate), Some(TestStore::Sled)).await;
        bare_durable_p99s.push(durable.p99.as_secs_f64() * 1e3);
    }
    server.stop().await;
    let (p50, p99) = (median(p50s), median(p99s.clone()));
    let (bare_p99, bare_durable_p99) = (median(bare_p99s), median(bare_durable_p99s.clone()));
    println!(
        "latency: at {rate:.0} creates/s (half of the maximum) p50 {p50:.2} ms, p99 {p99:.2} ms (rounds: {p99s:.2?}; goal p99 <= 5 ms); the same traffic sent bare at that rate: p99 {bare_p99:.2} ms, with the create's durable write {bare_durable_p99:.2} ms (rounds: {bare_durable_p99s:.2?})"
    );
    json!({
        "rate_per_s": rate,
        "p50_ms": p50,
        "p99_ms": p99,
        "p99_ms_by_round": p99s,
        "goal_p99_ms": 5.0,
        "bare_p99_ms": bare_p99,
        "bare_durable_p99_ms": bare_durable_p99,
        "bare_durable_p99_ms_by_round": bare_durable_p99s,
    })
}

fn draft(number: u64) -> NotificationDraft {
    NotificationDraft {
        target_host_name: Some(DEMO_HOST.into()),
        app_notification_id: Some(format!("n{number}")),
        visual_content: Some(VisualContentDraft {
            title: Some("Hello World!".into()),
            body: Some("Notifications are Great!".into()),
        }),
        ..NotificationDraft::default()
    }
}

async fn fill(store: &Arc<notif_store::SledStore>, feed: &FeedKey, count: u64) {
    let host = HostName::new(DEMO_HOST).unwrap();
    let now = Timestamp::from_unix_millis(4_000_000_000_000);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (store, feed, host, next) = (store.clone(), feed.clone(), host.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let number = next.fetch_add(1, Ordering::Relaxed);
                if number >= count {
                    return;
                }
                let mut random = [0u8; 10];
                random[2..].copy_from_slice(&number.to_be_bytes());
                let notification = draft(number)
                    .validate(
                        NotificationId::from_parts(number + 1, random),
                        DraftContext {
                            feed: &feed,
                            app_host: &host,
                            now,
                            limits: &Limits::default(),
                        },
                    )
                    .unwrap();
                store
                    .write(&feed, FeedOp::Upsert(Box::new(notification)), now)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// One first-page listing, one first page filtered by a read state nothing has (it ends at
/// the scan budget), and one changes-since read of the feed's last 50 changes, in µs.
async fn feed_reads(store: &notif_store::SledStore, feed: &FeedKey, size: u64) -> (f64, f64, f64) {
    let now = Timestamp::from_unix_millis(4_000_000_000_000);
    let started = Instant::now();
    let page = store.list(feed, &ListQuery::default(), now).await.unwrap();
    let list = started.elapsed().as_secs_f64() * 1e6;
    assert_eq!(page.notifications.len(), 50);
    let read_only = ListQuery {
        read_state: Some(notif_core::notification::ReadState::Read),
        ..ListQuery::default()
    };
    let started = Instant::now();
    let page = store.list(feed, &read_only, now).await.unwrap();
    let filtered = started.elapsed().as_secs_f64() * 1e6;
    assert!(page.notifications.is_empty());
    let started = Instant::now();
    let page = store
        .changes_since(feed, ChangeSeq::new(size - 50), 100, now)
        .await
        .unwrap();
    let changes = started.elapsed().as_secs_f64() * 1e6;
    assert_eq!(page.changes.len(), 50);
    (list, filtered, changes)
}

async fn scenario_feed(settings: &Settings) -> Value {
    let directory = tempfile::tempdir().unwrap();
    let store = Arc::new(notif_store::SledStore::open(directory.path()).unwrap());
    let small = FeedKey {
        app: AppId::new("demo").unwrap(),
        user: UserId::new("small").unwrap(),
    };
    let large = FeedKey {
        app: AppId::new("demo").unwrap(),
        user: UserId::new("large").unwrap(),
    };
    let large_size = if settings.quick { 20_000 } else { 100_000 };
    fill(&store, &small, 1_000).await;
    fill(&store, &large, large_size).await;
    store.flush().await.unwrap();
    // The two feeds are read alternately, after a warm-up, so drift on the machine (the
    // fill's background writes, CPU frequency) weighs on both alike.
    let (mut small_lists, mut small_filtered, mut small_changes) =
        (Vec::new(), Vec::new(), Vec::new());
    let (mut large_lists, mut large_filtered, mut large_changes) =
        (Vec::new(), Vec::new(), Vec::new());
    for iteration in 0..550 {
        let small_reads = feed_reads(&store, &small, 1_000).await;
        let large_reads = feed_reads(&store, &large, large_size).await;
        if iteration >= 50 {
            small_lists.push(small_reads.0);
            small_filtered.push(small_reads.1);
            small_changes.push(small_reads.2);
            large_lists.push(large_reads.0);
            large_filtered.push(large_reads.1);
            large_changes.push(large_reads.2);
        }
    }
    let (small_list, small_changes) = (median(small_lists), median(small_changes));
    let (large_list, large_changes) = (median(large_lists), median(large_changes));
    let (small_filtered, large_filtered) = (median(small_filtered), median(large_filtered));
    println!(
        "feed: first page {small_list:.0} µs at 1,000 vs {large_list:.0} µs at {large_size}: ratio {:.2}; changes-since {small_changes:.0} µs vs {large_changes:.0} µs: ratio {:.2} (goal <= 1.5); a filter matching nothing {small_filtered:.0} µs vs {large_filtered:.0} µs: ratio {:.2}",
        large_list / small_list,
        large_changes / small_changes,
        large_filtered / small_filtered
    );
    json!({"large_feed": large_size, "list_us": [small_list, large_list], "list_ratio": large_list / small_list,
           "changes_us": [small_changes, large_changes], "changes_ratio": large_changes / small_changes,
           "filtered_us": [small_filtered, large_filtered], "filtered_ratio": large_filtered / small_filtered,
           "goal": 1.5})
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn scenario_memory(settings: &Settings) -> Value {
    let notifd = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("notifd");
    if !notifd.exists() {
        println!(
            "memory: skipped ({} not built; run `cargo build --release --bin notifd`)",
            notifd.display()
        );
        return json!({"skipped": true});
    }
    // The same 100,000 jobs in a quick run: with fewer, the store's fixed start-up costs
    // (caches and arenas first touched) read as per-job growth.
    let jobs: u64 = 100_000;
    let mut idle_mib = Vec::new();
    let mut per_job = Vec::new();
    for _ in 0..settings.rounds() {
        let (idle, growth) = memory_round(&notifd, jobs).await;
        idle_mib.push(idle);
        per_job.push(growth);
    }
    let (idle, growth) = (median(idle_mib), median(per_job.clone()));
    println!(
        "memory: idle notifd RSS {idle:.1} MiB (goal <= 30); +{growth:.0} bytes per pending job over {jobs} jobs (rounds: {per_job:.0?}; goal <= 1024)"
    );
    json!({"idle_rss_mib": idle, "pending_jobs": jobs, "bytes_per_pending_job": growth, "bytes_per_pending_job_by_round": per_job, "goals": {"idle_mib": 30, "bytes_per_job": 1024}})
}

/// Starts `notifd`, reads its idle RSS (MiB), queues `jobs` pending jobs and returns the RSS
/// growth per job (bytes).
async fn memory_round(notifd: &std::path::Path, jobs: u64) -> (f64, f64) {
    let directory = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let config = directory.path().join("notif.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n[rate_limits]\nper_app_per_second = 1e9\nper_app_burst = 1e9\nper_user_per_second = 1e9\nper_user_burst = 1e9\n[dispatcher]\nretry_initial_delay_ms = 3600000\nretry_max_delay_ms = 3600000\n",
            directory.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(notifd)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = child.id().unwrap();
    let idle = rss_kib(pid);
    // Ten browsers whose push service never answers (a closed port): every push fails and
    // waits an hour for its retry, so each create leaves ten pending jobs.
    let token = notif_tests::dev_sign_in(&http, &base, "demo-client", "mem").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for browser in 0..10 {
        let body = json!({"platform": "webPush", "endpoint": format!("http://127.0.0.1:{dead}/push/{browser}"),
                          "keys": {"p256dh": format!("BA{}", "A".repeat(85)), "auth": "A".repeat(22)}});
        http.post(format!("{base}/me/notifications/subscriptions"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    let creates = jobs / 10;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, base, token, next) = (http.clone(), base.clone(), token.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let number = next.fetch_add(1, Ordering::Relaxed);
                if number >= creates {
                    return;
                }
                let body = json!({"targetHostName": DEMO_HOST, "appNotificationId": format!("m{number}"), "payload": {"rawContent": "pending"}});
                http.post(format!("{base}/me/notifications")).bearer_auth(&token).json(&body).send().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = rss_kib(pid);
    let per_job = (loaded.saturating_sub(idle) as f64 * 1024.0) / jobs as f64;
    child.kill().await.unwrap();
    (idle as f64 / 1024.0, per_job)
}

/// Runs a crate's own bench (`cargo bench -p <package> -- <arguments>`) and returns its JSON
/// summary line.
fn crate_bench(package: &str, bench: &str, arguments: &[&str], quick: bool) -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args(["bench", "-q", "-p", package, "--bench", bench, "--"]);
    command.args(arguments);
    if quick {
        command.arg("--quick");
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines().filter(|line| !line.starts_with('{')) {
        println!("{package}: {line}");
    }
    stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .unwrap_or_else(|| json!({"error": String::from_utf8_lossy(&output.stderr).to_string()}))
}

/// Creates in [`store_workload`].
const WORKLOAD_CREATES: u64 = 1_000;
/// Feeds (users) in [`store_workload`], each with three devices.
const WORKLOAD_FEEDS: u64 = 8;

/// The fixed store workload (see the module's documentation).
async fn store_workload(settle: bool) {
    let now = Timestamp::from_unix_millis(1_800_000_000_000);
    let directory = tempfile::tempdir().unwrap();
    let store = notif_store::SledStore::open(directory.path()).unwrap();
    let host = HostName::new(DEMO_HOST).unwrap();
    let feed = |number: u64| FeedKey {
        app: AppId::new("demo").unwrap(),
        user: UserId::new(format!("user{}", number % WORKLOAD_FEEDS)).unwrap(),
    };
    for user in 0..WORKLOAD_FEEDS {
        for device in 0..3u8 {
            let subscription = Subscription {
                id: SubscriptionId::from_parts(user, [device; 10]),
                feed: feed(user),
                client_id: ClientId::new("device").unwrap(),
                channel: PushChannel::Fcm {
                    registration_token: format!("token-{user}-{device}"),
                },
                created_at: now,
                expires_at: now.saturating_add(Duration::from_secs(86_400)),
            };
            store.subscribe(subscription, 100).await.unwrap();
        }
    }
    for number in 0..WORKLOAD_CREATES {
        let feed = feed(number);
        let mut random = [0u8; 10];
        random[2..].copy_from_slice(&number.to_be_bytes());
        let context = DraftContext {
            feed: &feed,
            app_host: &host,
            now,
            limits: &Limits::default(),
        };
        let notification = draft(number)
            .validate(NotificationId::from_parts(1, random), context)
            .unwrap();
        let write = store
            .write(&feed, FeedOp::Upsert(Box::new(notification)), now)
            .await
            .unwrap();
        assert_eq!(write.jobs.len(), 3);
    }
    if settle {
        settle_every_job(&store, now).await;
    }
    store.close().await.unwrap();
}

/// Leases every due job of `store` and settles it delivered, a batch of 64 at a time.
async fn settle_every_job(store: &notif_store::SledStore, now: Timestamp) {
    loop {
        let leased = store
            .lease_due(now, 64, Duration::from_secs(30))
            .await
            .unwrap();
        if leased.is_empty() {
            break;
        }
        let delivered = Settlement::Done(DeliveryState::Delivered {
            at: now,
            text_shortened: false,
        });
        let settlements = leased
            .into_iter()
            .map(|leased| (leased.job, delivered.clone()))
            .collect();
        store.settle(settlements, now).await.unwrap();
    }
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments
        .iter()
        .any(|argument| argument == "store-workload")
    {
        let settle = arguments.iter().any(|argument| argument == "--settle");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(store_workload(settle));
        return;
    }
    let settings = Settings {
        quick: arguments.iter().any(|argument| argument == "--quick"),
    };
    let chosen: Vec<&str> = arguments
        .iter()
        .map(String::as_str)
        .filter(|argument| !argument.starts_with("--"))
        .collect();
    let wanted = |name: &str| chosen.is_empty() || chosen.contains(&name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut summary = serde_json::Map::new();
    let started = Instant::now();
    if wanted("grpc") || wanted("latency") {
        let sled = runtime.block_on(scenario_grpc(&settings, TestStore::Sled));
        // Before PostgreSQL's rounds: the server they start stays up and shares the two
        // cores and the disk (measured after them, p99 read 5.03 and 5.94 ms with one round
        // at 11 ms; before them, 3.50 ms).
        if wanted("latency") {
            summary.insert(
                "latency".into(),
                runtime.block_on(scenario_latency(&settings, sled.fan_out)),
            );
        }
        let mut grpc = json!({"sled": sled.json});
        if wanted("grpc") {
            let postgres = runtime.block_on(scenario_grpc(&settings, TestStore::Postgres));
            grpc["postgres_vs_sled"] = postgres_vs_sled(&sled, &postgres);
            grpc["postgres"] = postgres.json;
        }
        summary.insert("grpc".into(), grpc);
    }
    if wanted("store") {
        summary.insert(
            "store".into(),
            crate_bench("notif-store", "store_throughput", &[], settings.quick),
        );
    }
    if wanted("postgres") {
        summary.insert(
            "postgres".into(),
            crate_bench(
                "notif-store",
                "store_throughput",
                &["postgres"],
                settings.quick,
            ),
        );
    }
    if wanted("delivery") {
        summary.insert(
            "delivery".into(),
            crate_bench("notif-delivery", "dispatch_throughput", &[], settings.quick),
        );
    }
    if wanted("feed") {
        summary.insert("feed".into(), runtime.block_on(scenario_feed(&settings)));
    }
    if wanted("memory") {
        summary.insert(
            "memory".into(),
            runtime.block_on(scenario_memory(&settings)),
        );
    }
    let path = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("notif-bench.json");
    let text = serde_json::to_string_pretty(&Value::Object(summary)).unwrap();
    if std::fs::write(&path, &text).is_err() {
        eprintln!("could not write {}", path.display());
    }
    println!("{text}");
    println!(
        "finished in {:.0} s; summary in {}",
        started.elapsed().as_secs_f64(),
        path.display()
    );
}
