//! The model-based property suite: random sequences of feed writes, subscriptions, deliveries,
//! clock advances, expiry sweeps and close + reopen of the store, checked after every step
//! against a simple reference model on every observable result.
//!
//! The model keeps plain maps and finds targets by scanning them; it applies the same domain
//! rule (`notif_core::feed::apply`) the store does, so what is tested is the storage: indexes,
//! change log, counters, jobs, leases, statuses, expiry and durability across reopen.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use notif_core::delivery::{DeliveryState, Settlement};
use notif_core::fanout::DeliveryJob;
use notif_core::feed::{self, FeedOp, FeedState, FeedWrite, StateChange, Target};
use notif_core::ids::{
    AppId, AppNotificationId, ClientId, GroupName, HostName, NotificationId, SubscriptionId, UserId,
};
use notif_core::notification::{
    ChangeSeq, DraftContext, FeedKey, Limits, Notification, NotificationDraft, ReadState, Status,
    VisualContentDraft,
};
use notif_core::ports::{ListQuery, StoreError};
use notif_core::subscription::{ChannelPolicy, Subscription};
use notif_core::time::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::fixtures::{DEMO_HOST, START, channel};
use super::{StoreFactory, StorePorts};

const LEASE: Duration = Duration::from_secs(60);
const PLATFORMS: [&str; 4] = ["windows", "android", "ios", "webpush"];

#[derive(Debug, Clone)]
enum Selector {
    Key(u8),
    Group(u8),
    /// The n-th id the model has seen (modulo), or a fresh one when it has seen none.
    Id(u8),
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        feed: u8,
        key: u8,
        group: Option<u8>,
        platforms: Vec<u8>,
        expires_in_s: u32,
    },
    MarkRead {
        feed: u8,
        target: Selector,
    },
    Delete {
        feed: u8,
        target: Selector,
    },
    Subscribe {
        feed: u8,
        device: u8,
    },
    Unsubscribe {
        feed: u8,
        device: u8,
    },
    DeliverDue,
    Advance {
        seconds: u32,
    },
    Expire,
    Reopen,
}

fn selector() -> impl Strategy<Value = Selector> {
    prop_oneof![
        (0u8..4).prop_map(Selector::Key),
        (0u8..2).prop_map(Selector::Group),
        any::<u8>().prop_map(Selector::Id),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..4, proptest::option::of(0u8..2), proptest::collection::vec(0u8..4, 0..3), 30u32..3_600)
            .prop_map(|(feed, key, group, platforms, expires_in_s)| Op::Create { feed, key, group, platforms, expires_in_s }),
        2 => (0u8..3, selector()).prop_map(|(feed, target)| Op::MarkRead { feed, target }),
        2 => (0u8..3, selector()).prop_map(|(feed, target)| Op::Delete { feed, target }),
        2 => (0u8..3, 0u8..5).prop_map(|(feed, device)| Op::Subscribe { feed, device }),
        1 => (0u8..3, 0u8..5).prop_map(|(feed, device)| Op::Unsubscribe { feed, device }),
        2 => Just(Op::DeliverDue),
        1 => (1u32..2_000).prop_map(|seconds| Op::Advance { seconds }),
        1 => Just(Op::Expire),
        1 => Just(Op::Reopen),
    ]
}

fn feed_of(index: u8) -> FeedKey {
    let (app, user) =
        [("demo", "alice"), ("demo", "bob"), ("other", "alice")][usize::from(index % 3)];
    FeedKey {
        app: AppId::new(app).unwrap(),
        user: UserId::new(user).unwrap(),
    }
}

#[derive(Debug, Default)]
struct Model {
    last_seq: BTreeMap<FeedKey, ChangeSeq>,
    notifications: BTreeMap<NotificationId, Notification>,
    subscriptions: BTreeMap<SubscriptionId, Subscription>,
    jobs: BTreeMap<(NotificationId, SubscriptionId), DeliveryJob>,
    statuses: BTreeMap<(NotificationId, SubscriptionId), DeliveryState>,
    ids_seen: Vec<NotificationId>,
}

impl Model {
    fn write(
        &mut self,
        feed: &FeedKey,
        op: FeedOp,
        now: Timestamp,
    ) -> Result<FeedWrite, StoreError> {
        let target = op.target();
        let current: Vec<Notification> = self
            .notifications
            .values()
            .filter(|n| &n.feed == feed && target.matches(n))
            .cloned()
            .collect();
        let subscriptions: Vec<Subscription> = self
            .subscriptions
            .values()
            .filter(|s| &s.feed == feed)
            .cloned()
            .collect();
        let write = feed::apply(
            op,
            FeedState {
                current: &current,
                last_seq: self.last_seq.get(feed).copied().unwrap_or_default(),
                subscriptions: &subscriptions,
                now,
            },
        )?;
        self.last_seq.insert(feed.clone(), write.last_seq);
        for (notification, _) in &write.changes {
            self.notifications
                .insert(notification.id, notification.clone());
        }
        for job in &write.jobs {
            self.jobs.insert(job.key(), job.clone());
            self.statuses.insert(job.key(), DeliveryState::Pending);
        }
        Ok(write)
    }

    fn subscribe(&mut self, candidate: Subscription) -> (SubscriptionId, bool) {
        let identity = candidate.channel.identity();
        let existing = self
            .subscriptions
            .values()
            .find(|s| s.feed.app == candidate.feed.app && s.channel.identity() == identity)
            .cloned();
        let stored = match &existing {
            Some(existing) => Subscription {
                id: existing.id,
                created_at: existing.created_at,
                ..candidate
            },
            None => candidate,
        };
        let id = stored.id;
        self.subscriptions.insert(id, stored);
        (id, existing.is_some())
    }

    fn deliver_due(&mut self, now: Timestamp) {
        let due: Vec<_> = self
            .jobs
            .values()
            .filter(|job| job.due <= now)
            .cloned()
            .collect();
        for job in due {
            self.jobs.remove(&job.key());
            let notification = self.notifications.get(&job.notification);
            let subscription = self.subscriptions.get(&job.subscription);
            let state = match (notification, subscription) {
                (None, _) => continue,
                (Some(n), _) if n.expiration <= now => DeliveryState::Expired,
                (Some(_), Some(s)) if s.is_live(now) => DeliveryState::Delivered {
                    at: now,
                    text_shortened: false,
                },
                (Some(_), _) => DeliveryState::Failed {
                    reason: "the subscription was removed or lapsed".into(),
                },
            };
            self.statuses.insert(job.key(), state);
        }
    }

    fn expire(&mut self, now: Timestamp) {
        let expired: Vec<NotificationId> = self
            .notifications
            .values()
            .filter(|n| n.expiration <= now)
            .map(|n| n.id)
            .collect();
        for id in expired {
            self.notifications.remove(&id);
            self.jobs.retain(|(notification, _), _| *notification != id);
            self.statuses
                .retain(|(notification, _), _| *notification != id);
        }
        self.subscriptions.retain(|_, s| s.is_live(now));
    }

    fn unread(&self, feed: &FeedKey) -> u64 {
        self.notifications
            .values()
            .filter(|n| {
                &n.feed == feed && n.status == Status::Active && n.read_state == ReadState::Unread
            })
            .count() as u64
    }
}

struct Run<'a> {
    store: Option<Arc<dyn StorePorts>>,
    factory: &'a dyn StoreFactory,
    model: Model,
    now: Timestamp,
    next_id: u64,
}

impl Run<'_> {
    fn store(&self) -> &dyn StorePorts {
        self.store.as_deref().unwrap()
    }

    fn fresh_random(&mut self) -> [u8; 10] {
        self.next_id += 1;
        let mut random = [0u8; 10];
        random[2..].copy_from_slice(&self.next_id.to_be_bytes());
        random
    }

    fn resolve(&mut self, selector: &Selector) -> Target {
        match selector {
            Selector::Key(key) => {
                Target::AppNotificationId(AppNotificationId::new(format!("k{key}")).unwrap())
            }
            Selector::Group(group) => Target::Group(GroupName::new(format!("g{group}")).unwrap()),
            Selector::Id(index) => match self.model.ids_seen.len() {
                0 => Target::Id(NotificationId::from_parts(1, self.fresh_random())),
                seen => Target::Id(self.model.ids_seen[usize::from(*index) % seen]),
            },
        }
    }

    async fn apply(&mut self, op: &Op) {
        match op {
            Op::Create {
                feed,
                key,
                group,
                platforms,
                expires_in_s,
            } => {
                let feed = feed_of(*feed);
                let host = HostName::new(DEMO_HOST).unwrap();
                let draft = NotificationDraft {
                    target_host_name: Some(DEMO_HOST.into()),
                    app_notification_id: Some(format!("k{key}")),
                    group_name: group.map(|g| format!("g{g}")),
                    visual_content: Some(VisualContentDraft {
                        title: Some(format!("t{}", self.next_id)),
                        body: None,
                    }),
                    platform_types: platforms
                        .iter()
                        .map(|p| PLATFORMS[usize::from(*p)].to_owned())
                        .collect(),
                    expiration_date_time: Some(
                        self.now
                            .saturating_add(Duration::from_secs((*expires_in_s).into()))
                            .to_rfc3339(),
                    ),
                    ..NotificationDraft::default()
                };
                let id = NotificationId::from_parts(
                    u64::try_from(self.now.unix_millis()).unwrap(),
                    self.fresh_random(),
                );
                let candidate = draft
                    .validate(
                        id,
                        DraftContext {
                            feed: &feed,
                            app_host: &host,
                            now: self.now,
                            limits: &Limits::default(),
                        },
                    )
                    .unwrap();
                self.model.ids_seen.push(id);
                self.compare_write(&feed, FeedOp::Upsert(Box::new(candidate)))
                    .await;
            }
            Op::MarkRead { feed, target } => {
                let feed = feed_of(*feed);
                let target = self.resolve(target);
                let change = StateChange::new(Some(ReadState::Read), None).unwrap();
                self.compare_write(&feed, FeedOp::UpdateState { target, change })
                    .await;
            }
            Op::Delete { feed, target } => {
                let feed = feed_of(*feed);
                let target = self.resolve(target);
                self.compare_write(&feed, FeedOp::Delete(target)).await;
            }
            Op::Subscribe { feed, device } => {
                let feed = feed_of(*feed);
                let platform = PLATFORMS[usize::from(*device % 4)];
                let channel = channel(platform, u32::from(*device))
                    .validate(&ChannelPolicy::default())
                    .unwrap();
                let candidate = Subscription {
                    id: SubscriptionId::from_parts(1, self.fresh_random()),
                    feed,
                    client_id: ClientId::new("device").unwrap(),
                    channel,
                    created_at: self.now,
                    expires_at: self.now.saturating_add(Duration::from_secs(5_000)),
                };
                let stored = self
                    .store()
                    .subscribe(candidate.clone(), 100)
                    .await
                    .unwrap();
                let (id, renewed) = self.model.subscribe(candidate);
                assert_eq!((stored.subscription.id, stored.renewed), (id, renewed));
            }
            Op::Unsubscribe { feed, device } => {
                let feed = feed_of(*feed);
                let identity = channel(PLATFORMS[usize::from(*device % 4)], u32::from(*device))
                    .validate(&ChannelPolicy::default())
                    .unwrap()
                    .identity();
                let owned = self
                    .model
                    .subscriptions
                    .values()
                    .find(|s| s.feed == feed && s.channel.identity() == identity)
                    .map(|s| s.id);
                let id = match owned {
                    Some(id) => id,
                    None => SubscriptionId::from_parts(1, self.fresh_random()),
                };
                let result = self.store().unsubscribe(&feed, id).await;
                match owned {
                    Some(id) => {
                        result.unwrap();
                        self.model.subscriptions.remove(&id);
                    }
                    None => assert_eq!(result, Err(StoreError::NotFound)),
                }
            }
            Op::DeliverDue => {
                let now = self.now;
                for leased in self.store().lease_due(now, 10_000, LEASE).await.unwrap() {
                    self.store()
                        .settle(
                            vec![(
                                leased.job.clone(),
                                Settlement::Done(DeliveryState::Delivered {
                                    at: now,
                                    text_shortened: false,
                                }),
                            )],
                            now,
                        )
                        .await
                        .unwrap();
                }
                self.model.deliver_due(now);
            }
            Op::Advance { seconds } => {
                self.now = self
                    .now
                    .saturating_add(Duration::from_secs((*seconds).into()))
            }
            Op::Expire => {
                self.store().expire(self.now, 10_000).await.unwrap();
                self.model.expire(self.now);
            }
            Op::Reopen => {
                let store = self.store.take().unwrap();
                store.close().await.unwrap();
                self.store = Some(self.factory.reopen(store));
            }
        }
    }

    async fn compare_write(&mut self, feed: &FeedKey, op: FeedOp) {
        let stored = self.store().write(feed, op.clone(), self.now).await;
        let modelled = self.model.write(feed, op, self.now);
        assert_eq!(stored, modelled);
    }

    async fn check_observables(&self) {
        for index in 0..3 {
            let feed = feed_of(index);
            let query = ListQuery {
                page_size: 1_000,
                ..ListQuery::default()
            };
            let page = self.store().list(&feed, &query, self.now).await.unwrap();
            let mut expected: Vec<Notification> = self
                .model
                .notifications
                .values()
                .filter(|n| n.feed == feed && query.matches(n, self.now))
                .cloned()
                .collect();
            expected.sort_by_key(|n| std::cmp::Reverse(n.id));
            assert_eq!(page.notifications, expected, "listing of {feed:?}");
            assert_eq!(
                page.unread_count,
                self.model.unread(&feed),
                "unread count of {feed:?}"
            );

            let last_seq = self
                .model
                .last_seq
                .get(&feed)
                .copied()
                .unwrap_or_default()
                .value();
            for cursor in [0, last_seq / 2, last_seq] {
                let cursor = ChangeSeq::new(cursor);
                let mut expected: Vec<Notification> = self
                    .model
                    .notifications
                    .values()
                    .filter(|n| n.feed == feed && n.change_seq > cursor && n.expiration > self.now)
                    .cloned()
                    .collect();
                expected.sort_by_key(|n| n.change_seq);
                let mut replayed = Vec::new();
                let mut position = cursor;
                loop {
                    let page = self
                        .store()
                        .changes_since(&feed, position, 3, self.now)
                        .await
                        .unwrap();
                    replayed.extend(page.changes);
                    position = page.cursor;
                    if !page.has_more {
                        break;
                    }
                }
                assert_eq!(replayed, expected, "changes of {feed:?} after {cursor:?}");
            }

            let mut subscriptions: Vec<Subscription> = self
                .model
                .subscriptions
                .values()
                .filter(|s| s.feed == feed)
                .cloned()
                .collect();
            subscriptions.sort_by_key(|s| s.id);
            assert_eq!(
                self.store().subscriptions(&feed).await.unwrap(),
                subscriptions
            );
        }
        for notification in self.model.notifications.values() {
            let stored = self
                .store()
                .get(&notification.feed, notification.id, self.now)
                .await
                .unwrap();
            let expected = (notification.expiration > self.now).then(|| notification.clone());
            assert_eq!(stored, expected);
            let statuses: BTreeMap<SubscriptionId, DeliveryState> = self
                .store()
                .delivery_status(&notification.feed, notification.id)
                .await
                .unwrap()
                .into_iter()
                .map(|record| (record.subscription, record.state))
                .collect();
            let expected: BTreeMap<SubscriptionId, DeliveryState> = self
                .model
                .statuses
                .iter()
                .filter(|((id, _), _)| *id == notification.id)
                .map(|((_, subscription), state)| (*subscription, state.clone()))
                .collect();
            assert_eq!(
                statuses, expected,
                "delivery status of {:?}",
                notification.id
            );
        }
    }
}

/// Applies `ops` to a fresh store from `factory` and to the model, comparing them after
/// every op.
fn agree_with_the_model(factory: &dyn StoreFactory, ops: &[Op]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut run = Run {
            store: Some(factory.fresh()),
            factory,
            model: Model::default(),
            now: START,
            next_id: 0,
        };
        for op in ops {
            run.apply(op).await;
            run.check_observables().await;
        }
        run.store.take().unwrap().close().await.unwrap();
    });
}

/// Random sequences of feed writes, subscriptions, deliveries, clock advances, expiry
/// sweeps and reopens agree with the model, each on a fresh store from `factory`.
pub fn the_store_agrees_with_the_model(factory: &dyn StoreFactory) {
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let outcome = runner.run(&proptest::collection::vec(op(), 1..40), |ops| {
        agree_with_the_model(factory, &ops);
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// Jobs handed over leased as they were written, and never taken, are due again at once
/// after the store closes and reopens — not only when their lease would have lapsed.
pub fn jobs_waiting_for_the_dispatcher_at_close_are_due_after_reopen(factory: &dyn StoreFactory) {
    agree_with_the_model(
        factory,
        &[
            Op::Subscribe { feed: 0, device: 0 },
            Op::DeliverDue,
            Op::Create {
                feed: 0,
                key: 0,
                group: None,
                platforms: vec![],
                expires_in_s: 3_600,
            },
            Op::Reopen,
            Op::DeliverDue,
        ],
    );
}

/// A job handed over but not yet taken when its subscription goes is never sent: the next
/// lease finds the subscription gone, as it would for a job that had waited in the store.
pub fn jobs_waiting_for_the_dispatcher_are_not_sent_after_an_unsubscribe(
    factory: &dyn StoreFactory,
) {
    agree_with_the_model(
        factory,
        &[
            Op::Subscribe { feed: 0, device: 1 },
            Op::DeliverDue,
            Op::Create {
                feed: 0,
                key: 0,
                group: None,
                platforms: vec![],
                expires_in_s: 3_600,
            },
            Op::Unsubscribe { feed: 0, device: 1 },
            Op::DeliverDue,
        ],
    );
}

/// Regression: jobs a write handed to the dispatcher and that it has not taken yet behave as
/// jobs waiting in the store — a newer change supersedes one (and is what is delivered), and
/// an unsubscribe gives one back so its lease records the endpoint gone. (Found on
/// PostgreSQL, whose writes hand jobs over too.)
pub fn jobs_in_the_hand_off_are_superseded_and_recalled(factory: &dyn StoreFactory) {
    agree_with_the_model(
        factory,
        &[
            Op::Subscribe { feed: 2, device: 0 },
            Op::DeliverDue,
            Op::Create {
                feed: 2,
                key: 3,
                group: None,
                platforms: vec![],
                expires_in_s: 61,
            },
            Op::MarkRead {
                feed: 2,
                target: Selector::Id(0),
            },
            Op::DeliverDue,
        ],
    );
    agree_with_the_model(
        factory,
        &[
            Op::Create {
                feed: 1,
                key: 0,
                group: Some(0),
                platforms: vec![],
                expires_in_s: 61,
            },
            Op::Subscribe { feed: 1, device: 4 },
            Op::Subscribe { feed: 1, device: 2 },
            Op::DeliverDue,
            Op::Delete {
                feed: 1,
                target: Selector::Group(0),
            },
            Op::Unsubscribe { feed: 1, device: 2 },
            Op::DeliverDue,
        ],
    );
}
