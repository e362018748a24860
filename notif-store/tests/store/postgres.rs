//! What only the PostgreSQL store promises: events between nodes (with `NOTIFY` and by
//! polling), migrations two nodes run at once, retries on a serializable engine, stale
//! settlements from a lapsed lease, riding out a database restart, and delivery that writes
//! holding every connection do not hold up.

use std::sync::Arc;
use std::time::Duration;

use notif_core::delivery::{DeliveryState, Settlement};
use notif_core::ids::{AppId, UserId};
use notif_core::notification::ChangeSeq;
use notif_core::notification::FeedKey;
use notif_core::ports::{Clock as _, DeliveryQueue as _, FeedEvents, StoreAdmin as _, StoreError};
use notif_store::contract::fixtures::{caller, channel, draft, user};
use notif_store::contract::{Harness, PostgresFactory, StorePorts, TestPostgres, run};
use notif_store::{EventDelivery, PostgresConfig, PostgresStore};

/// Far longer than any step takes: reaching it fails the test, it never paces it.
const PATIENCE: Duration = Duration::from_secs(20);

fn alice_feed() -> FeedKey {
    FeedKey {
        app: AppId::new("demo").unwrap(),
        user: UserId::new("alice").unwrap(),
    }
}

async fn open(factory: &PostgresFactory, url: &str) -> Arc<PostgresStore> {
    Arc::new(
        PostgresStore::open(&factory.config(url.to_owned()))
            .await
            .unwrap(),
    )
}

/// Node A writes; a watcher on node B wakes and reads the change.
async fn a_change_on_one_node_wakes_watchers_on_another(delivery: EventDelivery, poll: Duration) {
    let factory = PostgresFactory::new(delivery);
    let url = TestPostgres::shared().fresh_url();
    let (a, b) = (open(&factory, &url).await, open(&factory, &url).await);
    let (events_a, events_b) = (a.events(delivery, poll), b.events(delivery, poll));
    tokio::time::timeout(PATIENCE, events_b.listening())
        .await
        .unwrap();
    let node_a = Harness::over(a, events_a);
    let alice = user("alice");
    let feed = alice_feed();
    let mut woken = events_b.watch_feed(&feed);
    node_a
        .service
        .create(caller(&alice), draft("n1"))
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, woken.wait())
        .await
        .expect("node B's watcher was never woken");
    let changes = notif_core::ports::NotificationStore::changes_since(
        b.as_ref(),
        &feed,
        ChangeSeq::new(0),
        10,
        node_a.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(changes.changes.len(), 1);
}

#[test]
fn notify_carries_a_change_to_the_other_node() {
    // The poll runs once at start and then not for an hour: only NOTIFY can wake B.
    run(a_change_on_one_node_wakes_watchers_on_another(
        EventDelivery::Notify,
        Duration::from_secs(3_600),
    ));
}

#[test]
fn polling_alone_carries_a_change_to_the_other_node() {
    run(a_change_on_one_node_wakes_watchers_on_another(
        EventDelivery::Poll,
        Duration::from_millis(100),
    ));
}

#[test]
fn two_nodes_migrating_at_once_both_start() {
    run(async {
        let factory = PostgresFactory::new(EventDelivery::Poll);
        let url = TestPostgres::shared().fresh_url();
        let (first_config, second_config) = (factory.config(url.clone()), factory.config(url));
        let (first, second) = tokio::join!(
            PostgresStore::open(&first_config),
            PostgresStore::open(&second_config),
        );
        first.unwrap();
        second.unwrap();
    });
}

#[test]
fn a_schema_newer_than_the_binary_is_refused() {
    run(async {
        let factory = PostgresFactory::new(EventDelivery::Poll);
        let url = TestPostgres::shared().fresh_url();
        drop(open(&factory, &url).await);
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute("UPDATE notif_schema SET version = 999")
            .await
            .unwrap();
        match PostgresStore::open(&factory.config(url)).await {
            Err(StoreError::Unavailable(reason)) => assert!(reason.contains("newer"), "{reason}"),
            other => panic!("a newer schema was accepted: {other:?}"),
        }
    });
}

/// CockroachDB runs every transaction SERIALIZABLE and aborts one of two that conflict:
/// here PostgreSQL does the same, and concurrent writers to one feed all succeed, each once.
#[test]
fn serialization_failures_are_retried() {
    run(async {
        let factory = PostgresFactory::new(EventDelivery::Poll);
        let url = format!(
            "{}%20-cdefault_transaction_isolation%3Dserializable",
            TestPostgres::shared().fresh_url()
        );
        let harness = Arc::new(Harness::over(
            open(&factory, &url).await,
            notif_store::LocalEvents::new(),
        ));
        let alice = user("alice");
        for device in 0..3 {
            harness
                .service
                .subscribe(caller(&alice), channel("android", device))
                .await
                .unwrap();
        }
        let writers = (0..16).map(|writer| {
            let harness = Arc::clone(&harness);
            tokio::spawn(async move {
                let alice = user("alice");
                for number in 0..5 {
                    harness
                        .service
                        .create(caller(&alice), draft(&format!("w{writer}-{number}")))
                        .await
                        .unwrap();
                }
            })
        });
        for writer in writers.collect::<Vec<_>>() {
            writer.await.unwrap();
        }
        let feed = alice_feed();
        let changes = harness
            .store
            .changes_since(&feed, ChangeSeq::new(0), 1_000, harness.clock.now())
            .await
            .unwrap();
        assert_eq!(changes.changes.len(), 80);
        assert_eq!(
            changes.cursor,
            ChangeSeq::new(80),
            "no change number skipped"
        );
        assert_eq!(harness.store.pending_jobs().await.unwrap(), 240);
    });
}

#[test]
fn a_settlement_under_a_lapsed_lease_is_stale() {
    run(async {
        let harness = Harness::new(&PostgresFactory::new(EventDelivery::Poll));
        let alice = user("alice");
        harness
            .service
            .subscribe(caller(&alice), channel("android", 1))
            .await
            .unwrap();
        harness
            .service
            .create(caller(&alice), draft("n1"))
            .await
            .unwrap();
        let lease = Duration::from_secs(30);
        let now = harness.clock.now();
        let first = harness.store.lease_due(now, 10, lease).await.unwrap();
        assert_eq!(first.len(), 1);
        // The first dispatcher stalls past its lease; another leases the job again.
        harness.advance(lease);
        let later = harness.clock.now();
        let second = harness.store.lease_due(later, 10, lease).await.unwrap();
        assert_eq!(second.len(), 1);
        let delivered = Settlement::Done(DeliveryState::Delivered {
            at: later,
            text_shortened: false,
        });
        harness
            .store
            .settle(vec![(first[0].job.clone(), delivered.clone())], later)
            .await
            .unwrap();
        assert_eq!(
            harness.store.pending_jobs().await.unwrap(),
            1,
            "the second lease still holds it"
        );
        harness
            .store
            .settle(vec![(second[0].job.clone(), delivered)], later)
            .await
            .unwrap();
        assert_eq!(harness.store.pending_jobs().await.unwrap(), 0);
    });
}

#[test]
fn the_store_rides_out_a_database_restart() {
    let server = TestPostgres::dedicated();
    let url = server.fresh_url();
    run(async move {
        let factory = PostgresFactory::new(EventDelivery::Notify);
        let store: Arc<dyn StorePorts> = open(&factory, &url).await;
        let harness = Harness::over(store, notif_store::LocalEvents::new());
        let alice = user("alice");
        harness
            .service
            .create(caller(&alice), draft("before"))
            .await
            .unwrap();

        server.stop();
        let refused = harness
            .service
            .create(caller(&alice), draft("during"))
            .await;
        assert!(
            matches!(refused, Err(notif_core::Error::Unavailable(_))),
            "{refused:?}"
        );
        assert!(
            harness.store.health().is_err(),
            "unhealthy while the database is down"
        );

        server.restart();
        // The pool reconnects by itself: the first write after the restart may still meet
        // a connection the server closed, and says so; a retry succeeds.
        let mut written = None;
        for _ in 0..50 {
            match harness.service.create(caller(&alice), draft("after")).await {
                Ok(created) => {
                    written = Some(created);
                    break;
                }
                Err(notif_core::Error::Unavailable(_)) => {
                    tokio::task::yield_now().await;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(written.is_some(), "no write succeeded after the restart");
        let page = harness
            .service
            .list(caller(&alice), &notif_core::ports::ListQuery::default())
            .await
            .unwrap();
        let keys: Vec<_> = page
            .notifications
            .iter()
            .map(|n| n.app_notification_id.as_str().to_owned())
            .collect();
        assert_eq!(
            keys,
            ["after", "before"],
            "the acknowledged write survived, the refused one is absent"
        );
        assert!(harness.store.health().is_ok(), "healthy again");
    });
}

#[test]
fn a_node_shutting_down_gives_back_its_unsent_leases() {
    run(async {
        let factory = PostgresFactory::new(EventDelivery::Poll);
        let url = TestPostgres::shared().fresh_url();
        let node = |name: &str| PostgresConfig {
            node: name.into(),
            ..factory.config(url.clone())
        };
        let a = Arc::new(PostgresStore::open(&node("a")).await.unwrap());
        let b = PostgresStore::open(&node("b")).await.unwrap();
        let harness = Harness::over(a.clone(), notif_store::LocalEvents::new());
        let alice = user("alice");
        harness
            .service
            .subscribe(caller(&alice), channel("android", 1))
            .await
            .unwrap();
        harness
            .service
            .create(caller(&alice), draft("n1"))
            .await
            .unwrap();
        let now = harness.clock.now();
        let hour = Duration::from_secs(3_600);
        let held = a.lease_due(now, 10, hour).await.unwrap();
        assert_eq!(held.len(), 1);
        assert!(
            b.lease_due(now, 10, hour).await.unwrap().is_empty(),
            "a holds it"
        );
        a.close().await.unwrap();
        let taken_over = b.lease_due(now, 10, hour).await.unwrap();
        assert_eq!(taken_over.len(), 1, "given back at once, not after an hour");
        assert_eq!(taken_over[0].job.notification, held[0].job.notification);
        assert_eq!(taken_over[0].job.change_seq, held[0].job.change_seq);
    });
}

/// Writes that hold every connection of the pool — here, waiting on a feed's lock another
/// session holds — do not hold up the dispatcher's queue: leasing and settling have
/// connections of their own.
#[test]
fn writes_holding_every_connection_do_not_hold_up_delivery() {
    run(async {
        let factory = PostgresFactory::new(EventDelivery::Poll);
        let url = TestPostgres::shared().fresh_url();
        let config = PostgresConfig {
            pool_size: 2,
            ..factory.config(url.clone())
        };
        let harness = Arc::new(Harness::over(
            Arc::new(PostgresStore::open(&config).await.unwrap()),
            notif_store::LocalEvents::new(),
        ));
        let (alice, bob) = (user("alice"), user("bob"));
        harness
            .service
            .subscribe(caller(&alice), channel("android", 1))
            .await
            .unwrap();
        harness
            .service
            .create(caller(&alice), draft("n1"))
            .await
            .unwrap();
        harness
            .service
            .create(caller(&bob), draft("b0"))
            .await
            .unwrap();
        // Another session holds bob's feed: each of bob's writes takes a connection and waits
        // (the first on that session, the next behind the first).
        let (mut locker, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let holding = locker.transaction().await.unwrap();
        holding
            .execute(
                "SELECT 1 FROM notif_feeds WHERE usr = 'bob' FOR UPDATE",
                &[],
            )
            .await
            .unwrap();
        let writes: Vec<_> = (1..=config.pool_size)
            .map(|number| {
                let (harness, bob) = (Arc::clone(&harness), bob.clone());
                tokio::spawn(async move {
                    harness
                        .service
                        .create(caller(&bob), draft(&format!("b{number}")))
                        .await
                })
            })
            .collect();
        let waiting_on_the_lock = async {
            loop {
                let blocked: i64 = holding
                    .query_one(
                        "WITH RECURSIVE blocked(pid) AS ( \
                           SELECT pid FROM pg_stat_activity \
                           WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid)) \
                           UNION SELECT a.pid FROM pg_stat_activity a JOIN blocked b \
                             ON b.pid = ANY(pg_blocking_pids(a.pid))) \
                         SELECT count(*) FROM blocked",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if usize::try_from(blocked).unwrap() == config.pool_size {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(PATIENCE, waiting_on_the_lock)
            .await
            .expect("bob's writes hold every connection");

        let now = harness.clock.now();
        let leased = tokio::time::timeout(
            PATIENCE,
            harness.store.lease_due(now, 10, Duration::from_secs(30)),
        )
        .await
        .expect("leasing waited for the writes' connections")
        .unwrap();
        assert_eq!(leased.len(), 1, "alice's job");
        let delivered = Settlement::Done(DeliveryState::Delivered {
            at: now,
            text_shortened: false,
        });
        tokio::time::timeout(
            PATIENCE,
            harness
                .store
                .settle(vec![(leased[0].job.clone(), delivered)], now),
        )
        .await
        .expect("settling waited for the writes' connections")
        .unwrap();

        holding.commit().await.unwrap();
        for write in writes {
            write.await.unwrap().unwrap();
        }
        assert_eq!(harness.store.pending_jobs().await.unwrap(), 0);
        drop(locker);
        let _ = driver.await;
    });
}
