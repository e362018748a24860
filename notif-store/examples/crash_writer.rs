//! A writer for the crash test: creates notifications (each with three delivery jobs) from
//! concurrent tasks against a `SledStore` and prints `ack <id>` for each acknowledged create,
//! until it is killed. Usage: `crash_writer <directory> <run number>`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use notif_core::feed::FeedOp;
use notif_core::ids::{AppId, ClientId, HostName, NotificationId, SubscriptionId, UserId};
use notif_core::notification::{
    DraftContext, FeedKey, Limits, NotificationDraft, VisualContentDraft,
};
use notif_core::ports::{NotificationStore, SubscriptionStore};
use notif_core::subscription::{PushChannel, Subscription};
use notif_core::time::Timestamp;
use notif_store::SledStore;

/// The instant every run writes at; the test reads at the same instant.
const NOW: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);
const WRITERS: u64 = 16;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut arguments = std::env::args().skip(1);
    let directory = arguments
        .next()
        .expect("usage: crash_writer <directory> <run>");
    let run: u64 = arguments
        .next()
        .and_then(|run| run.parse().ok())
        .unwrap_or(0);
    let store = Arc::new(SledStore::open(&directory).unwrap());
    let feed = FeedKey {
        app: AppId::new("demo").unwrap(),
        user: UserId::new("alice").unwrap(),
    };
    for device in 0..3u8 {
        let subscription = Subscription {
            id: SubscriptionId::from_parts(1, [device; 10]),
            feed: feed.clone(),
            client_id: ClientId::new("demo-client").unwrap(),
            channel: PushChannel::Fcm {
                registration_token: format!("token-{device}"),
            },
            created_at: NOW,
            expires_at: NOW.saturating_add(Duration::from_secs(30 * 86_400)),
        };
        store.subscribe(subscription, 100).await.unwrap();
    }
    println!("ready");
    let counter = Arc::new(AtomicU64::new(0));
    for _ in 0..WRITERS {
        let (store, feed, counter) = (store.clone(), feed.clone(), counter.clone());
        tokio::spawn(async move {
            loop {
                let number = counter.fetch_add(1, Ordering::SeqCst);
                let mut random = [0u8; 10];
                random[..8].copy_from_slice(&(run << 40 | number).to_be_bytes());
                let id = NotificationId::from_parts(1_800_000_000_000 + run, random);
                let host = HostName::new("graphnotifications.sample.windows.com").unwrap();
                let draft = NotificationDraft {
                    target_host_name: Some(host.to_string()),
                    app_notification_id: Some(format!("run{run}-n{number}")),
                    visual_content: Some(VisualContentDraft {
                        title: Some(format!("title {number}")),
                        body: None,
                    }),
                    ..NotificationDraft::default()
                };
                let notification = draft
                    .validate(
                        id,
                        DraftContext {
                            feed: &feed,
                            app_host: &host,
                            now: NOW,
                            limits: &Limits::default(),
                        },
                    )
                    .unwrap();
                store
                    .write(&feed, FeedOp::Upsert(Box::new(notification)), NOW)
                    .await
                    .unwrap();
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "ack {id} run{run}-n{number}").unwrap();
                stdout.flush().unwrap();
            }
        });
    }
    // The writers run until the test kills the process.
    std::future::pending::<()>().await;
}
