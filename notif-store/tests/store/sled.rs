//! What only the sled store promises: opened by a new process, it voids the leases of the
//! one before, whose pushes can no longer be in flight.

use std::time::Duration;

use notif_core::feed::FeedOp;
use notif_core::ids::{AppId, ClientId, HostName, NotificationId, SubscriptionId, UserId};
use notif_core::notification::{ChangeSeq, DraftContext, FeedKey, Limits};
use notif_core::ports::{DeliveryQueue, NotificationStore, StoreAdmin, SubscriptionStore};
use notif_core::subscription::{ChannelPolicy, Subscription};
use notif_store::SledStore;
use notif_store::contract::fixtures::{DEMO_HOST, START, channel, draft};

fn feed_of(index: u8) -> FeedKey {
    let _ = index;
    FeedKey {
        app: AppId::new("demo").unwrap(),
        user: UserId::new("alice").unwrap(),
    }
}

/// A process that leased jobs and was killed never settles them: the next process to open
/// the store sends them at once — the in-flight job, and the newer change waiting behind
/// one — not when their leases lapse an hour later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leases_of_a_previous_process_are_voided_at_open() {
    let lease = Duration::from_secs(3_600);
    let directory = tempfile::tempdir().unwrap();
    let feed = feed_of(0);
    let host = HostName::new(DEMO_HOST).unwrap();
    let notification = |key: &str, random: u8| {
        draft(key)
            .validate(
                NotificationId::from_parts(1, [random; 10]),
                DraftContext {
                    feed: &feed,
                    app_host: &host,
                    now: START,
                    limits: &Limits::default(),
                },
            )
            .unwrap()
    };
    let store = SledStore::open(directory.path()).unwrap();
    let subscription = Subscription {
        id: SubscriptionId::from_parts(1, [9; 10]),
        feed: feed.clone(),
        client_id: ClientId::new("device").unwrap(),
        channel: channel("android", 1)
            .validate(&ChannelPolicy::default())
            .unwrap(),
        created_at: START,
        expires_at: START.saturating_add(Duration::from_secs(86_400)),
    };
    store.subscribe(subscription, 100).await.unwrap();
    for (key, random) in [("replaced", 1), ("in-flight", 2)] {
        store
            .write(
                &feed,
                FeedOp::Upsert(Box::new(notification(key, random))),
                START,
            )
            .await
            .unwrap();
    }
    let in_flight = store.lease_due(START, 10, lease).await.unwrap();
    assert_eq!(in_flight.len(), 2);
    // A newer change of one of them waits behind its in-flight push.
    let replaced = store
        .write(
            &feed,
            FeedOp::Upsert(Box::new(notification("replaced", 3))),
            START,
        )
        .await
        .unwrap();
    let later = START.saturating_add(Duration::from_secs(1));
    assert!(store.lease_due(later, 10, lease).await.unwrap().is_empty());
    store.close().await.unwrap();
    // The last handle goes as the process would: the directory is free for the next one.
    drop(store);

    let reopened = SledStore::open(directory.path()).unwrap();
    let mut sent_again: Vec<(NotificationId, ChangeSeq)> = reopened
        .lease_due(later, 10, lease)
        .await
        .unwrap()
        .into_iter()
        .map(|leased| (leased.job.notification, leased.job.change_seq))
        .collect();
    sent_again.sort();
    let in_flight_job = in_flight
        .iter()
        .find(|leased| leased.notification.app_notification_id.as_str() == "in-flight")
        .unwrap();
    let mut expected = vec![
        (in_flight_job.job.notification, in_flight_job.job.change_seq),
        (replaced.changes[0].0.id, replaced.changes[0].0.change_seq),
    ];
    expected.sort();
    assert_eq!(sent_again, expected);
    reopened.close().await.unwrap();
}
