//! The storage contract, run against every implementation through the notif-core use cases.

use std::collections::BTreeMap;
use std::time::Duration;

use notif_core::Error;
use notif_core::app::Principal;
use notif_core::delivery::{
    DeliveryOutcome, DeliveryState, Jitter, RetryPolicy, Settlement, settle,
};
use notif_core::fallback::{FallbackPolicyDraft, JobFallback};
use notif_core::feed::{StateChange, Target};
use notif_core::ids::{AppNotificationId, GroupName, NotificationId, SubscriptionId};
use notif_core::notification::{
    ChangeSeq, NotificationDraft, ReadState, Scalar, Status, UserActionState,
};
use notif_core::platform::Platform;
use notif_core::ports::{LeasedJob, ListQuery};
use notif_core::service::{Caller, Created};
use notif_core::time::Timestamp;

use super::fixtures::*;

const LEASE: Duration = Duration::from_secs(30);

fn read() -> StateChange {
    StateChange::new(Some(ReadState::Read), None).unwrap()
}

fn by_key(key: &str) -> Target {
    Target::AppNotificationId(AppNotificationId::new(key).unwrap())
}

/// Contract: create then get and list.
pub async fn create_then_get_and_list(harness: Harness) {
    let alice = user("alice");
    let created = harness
        .service
        .create(caller(&alice), draft("n1"))
        .await
        .unwrap();
    assert!(!created.replaced);
    assert_eq!(created.notification.change_seq, ChangeSeq::new(1));
    let fetched = harness
        .service
        .get(caller(&alice), created.notification.id)
        .await
        .unwrap();
    assert_eq!(fetched, created.notification);
    let page = harness
        .service
        .list(caller(&alice), &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.notifications, vec![created.notification]);
    assert_eq!(page.unread_count, 1);
}

/// Contract: replacing keeps the id and resets state.
pub async fn replacing_keeps_the_id_and_resets_state(harness: Harness) {
    let alice = user("alice");
    let first = harness
        .service
        .create(caller(&alice), draft("n1"))
        .await
        .unwrap();
    harness
        .service
        .update_state(caller(&alice), by_key("n1"), read())
        .await
        .unwrap();
    harness.advance(Duration::from_secs(5));
    let replacement = NotificationDraft {
        raw_content: Some("new raw".into()),
        ..draft("n1")
    };
    let second = harness
        .service
        .create(caller(&alice), replacement)
        .await
        .unwrap();
    assert!(second.replaced);
    assert_eq!(second.notification.id, first.notification.id);
    assert_eq!(
        second.notification.created_at,
        first.notification.created_at
    );
    assert_eq!(
        second.notification.last_modified_at,
        Some(harness.clock_now())
    );
    assert_eq!(second.notification.read_state, ReadState::Unread);
    assert_eq!(second.notification.payload.raw(), Some("new raw"));
    assert_eq!(second.notification.change_seq, ChangeSeq::new(3));
    let page = harness
        .service
        .list(caller(&alice), &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.notifications.len(), 1);
    assert_eq!(page.unread_count, 1);
}

/// Contract: create after delete gets a new id.
pub async fn create_after_delete_gets_a_new_id(harness: Harness) {
    let alice = user("alice");
    let first = harness
        .service
        .create(caller(&alice), draft("n1"))
        .await
        .unwrap();
    harness
        .service
        .delete(caller(&alice), Target::Id(first.notification.id))
        .await
        .unwrap();
    let second = harness
        .service
        .create(caller(&alice), draft("n1"))
        .await
        .unwrap();
    assert!(!second.replaced);
    assert_ne!(second.notification.id, first.notification.id);
    let tombstone = harness
        .service
        .get(caller(&alice), first.notification.id)
        .await
        .unwrap();
    assert_eq!(tombstone.status, Status::Deleted);
}

/// Contract: jobs are written with the create.
pub async fn jobs_are_written_with_the_create(harness: Harness) {
    let alice = user("alice");
    for (platform, device) in [("windows", 1), ("android", 2), ("ios", 3), ("webpush", 4)] {
        harness
            .service
            .subscribe(caller(&alice), channel(platform, device))
            .await
            .unwrap();
    }
    let draft = NotificationDraft {
        platform_types: vec!["windows".into(), "Android".into()],
        ..draft("n1")
    };
    let created = harness.service.create(caller(&alice), draft).await.unwrap();
    let status = harness
        .service
        .delivery_status(caller(&alice), created.notification.id)
        .await
        .unwrap();
    let platforms: Vec<Platform> = status.iter().map(|record| record.platform).collect();
    assert_eq!(status.len(), 2);
    assert!(platforms.contains(&Platform::Windows) && platforms.contains(&Platform::Android));
    assert!(
        status
            .iter()
            .all(|record| record.state == DeliveryState::Pending)
    );
    let leased = harness
        .store
        .lease_due(harness.clock_now(), 100, LEASE)
        .await
        .unwrap();
    assert_eq!(leased.len(), 2);
    assert!(
        leased
            .iter()
            .all(|job| job.notification.id == created.notification.id)
    );
}

/// Contract: state changes sync to devices but not web push.
pub async fn state_changes_sync_to_devices_but_not_web_push(harness: Harness) {
    let alice = user("alice");
    harness
        .service
        .subscribe(caller(&alice), channel("windows", 1))
        .await
        .unwrap();
    harness
        .service
        .subscribe(caller(&alice), channel("webpush", 2))
        .await
        .unwrap();
    let created = harness
        .service
        .create(caller(&alice), draft("n1"))
        .await
        .unwrap();
    deliver_everything(&harness).await;
    let updated = harness
        .service
        .update_state(
            caller(&alice),
            Target::Id(created.notification.id),
            StateChange::new(None, Some(UserActionState::Dismissed)).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(updated[0].user_action_state, UserActionState::Dismissed);
    assert_eq!(
        updated[0].status,
        Status::Active,
        "dismissing does not delete"
    );
    let leased = harness
        .store
        .lease_due(harness.clock_now(), 100, LEASE)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].job.platform, Platform::Windows);
    assert_eq!(
        leased[0].notification.user_action_state,
        UserActionState::Dismissed
    );
}

/// Contract: read state moves the unread count.
pub async fn read_state_moves_the_unread_count(harness: Harness) {
    let alice = user("alice");
    for key in ["a", "b", "c"] {
        harness
            .service
            .create(caller(&alice), draft(key))
            .await
            .unwrap();
    }
    harness
        .service
        .update_state(caller(&alice), by_key("b"), read())
        .await
        .unwrap();
    harness
        .service
        .delete(caller(&alice), by_key("c"))
        .await
        .unwrap();
    let page = harness
        .service
        .list(caller(&alice), &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.unread_count, 1);
    let unread_only = ListQuery {
        read_state: Some(ReadState::Unread),
        ..ListQuery::default()
    };
    let page = harness
        .service
        .list(caller(&alice), &unread_only)
        .await
        .unwrap();
    assert_eq!(page.notifications.len(), 1);
    assert_eq!(page.notifications[0].app_notification_id.as_str(), "a");
}

/// Contract: deletes by key and group leave tombstones.
pub async fn deletes_by_key_and_group_leave_tombstones(harness: Harness) {
    let alice = user("alice");
    harness
        .service
        .create(caller(&alice), grouped("a", "g1"))
        .await
        .unwrap();
    harness
        .service
        .create(caller(&alice), grouped("b", "g1"))
        .await
        .unwrap();
    harness
        .service
        .create(caller(&alice), grouped("c", "g2"))
        .await
        .unwrap();
    let deleted = harness
        .service
        .delete(caller(&alice), Target::Group(GroupName::new("g1").unwrap()))
        .await
        .unwrap();
    assert_eq!(deleted.len(), 2);
    assert!(deleted.iter().all(|n| n.status == Status::Deleted));
    assert_eq!(
        harness
            .service
            .delete(caller(&alice), Target::Group(GroupName::new("g1").unwrap()))
            .await,
        Err(Error::NotFound)
    );
    harness
        .service
        .delete(caller(&alice), by_key("c"))
        .await
        .unwrap();
    assert_eq!(
        harness.service.delete(caller(&alice), by_key("c")).await,
        Err(Error::NotFound)
    );
    let live = harness
        .service
        .list(caller(&alice), &ListQuery::default())
        .await
        .unwrap();
    assert!(live.notifications.is_empty());
    let tombstones = ListQuery {
        status: Some(Status::Deleted),
        ..ListQuery::default()
    };
    let page = harness
        .service
        .list(caller(&alice), &tombstones)
        .await
        .unwrap();
    assert_eq!(page.notifications.len(), 3);
    assert_eq!(
        harness
            .service
            .update_state(caller(&alice), by_key("a"), read())
            .await,
        Err(Error::NotFound)
    );
}

/// Contract: list paginates newest first with filters.
pub async fn list_paginates_newest_first_with_filters(harness: Harness) {
    let alice = user("alice");
    let mut ids = Vec::new();
    for index in 0..7 {
        harness.advance(Duration::from_millis(10));
        let group = if index % 2 == 0 { "even" } else { "odd" };
        let created = harness
            .service
            .create(caller(&alice), grouped(&format!("n{index}"), group))
            .await
            .unwrap();
        ids.push(created.notification.id);
    }
    let mut query = ListQuery {
        page_size: 3,
        ..ListQuery::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = harness.service.list(caller(&alice), &query).await.unwrap();
        seen.extend(page.notifications.iter().map(|n| n.id));
        match page.next_page_token {
            Some(token) => query.page_token = Some(token),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let odd = ListQuery {
        group: Some(GroupName::new("odd").unwrap()),
        ..ListQuery::default()
    };
    let page = harness.service.list(caller(&alice), &odd).await.unwrap();
    assert_eq!(page.notifications.len(), 3);
}

/// Contract: a filtered page examines at most its scan budget.
pub async fn a_filtered_page_examines_at_most_its_scan_budget(harness: Harness) {
    let alice = user("alice");
    let mut read_ones = Vec::new();
    for index in 0..30 {
        harness.advance(Duration::from_millis(10));
        let created = harness
            .service
            .create(caller(&alice), draft(&format!("n{index}")))
            .await
            .unwrap();
        if index == 4 || index == 25 {
            harness
                .service
                .update_state(caller(&alice), by_key(&format!("n{index}")), read())
                .await
                .unwrap();
            read_ones.push(created.notification.id);
        }
    }
    let mut query = ListQuery {
        read_state: Some(ReadState::Read),
        scan_budget: 10,
        ..ListQuery::default()
    };
    let (mut pages, mut seen) = (0, Vec::new());
    loop {
        let page = harness.service.list(caller(&alice), &query).await.unwrap();
        pages += 1;
        seen.extend(page.notifications.iter().map(|n| n.id));
        match page.next_page_token {
            Some(token) => query.page_token = Some(token),
            None => break,
        }
    }
    read_ones.reverse();
    assert_eq!(seen, read_ones, "every match once, newest first");
    assert_eq!(pages, 3, "30 notifications, 10 examined per page");
    // A filter matching nothing still ends within the budget.
    let nothing = ListQuery {
        group: Some(GroupName::new("nomatch").unwrap()),
        scan_budget: 10,
        ..ListQuery::default()
    };
    let page = harness
        .service
        .list(caller(&alice), &nothing)
        .await
        .unwrap();
    assert!(page.notifications.is_empty());
    assert!(
        page.next_page_token.is_some(),
        "the page ended early, not at the feed's end"
    );
}

/// Contract: change replay converges to the listing.
pub async fn change_replay_converges_to_the_listing(harness: Harness) {
    let alice = user("alice");
    for key in ["a", "b", "c", "d"] {
        harness
            .service
            .create(caller(&alice), grouped(key, "g"))
            .await
            .unwrap();
    }
    harness
        .service
        .update_state(caller(&alice), by_key("a"), read())
        .await
        .unwrap();
    harness
        .service
        .create(caller(&alice), draft("b"))
        .await
        .unwrap();
    harness
        .service
        .delete(caller(&alice), by_key("c"))
        .await
        .unwrap();
    for start in 0..=8u64 {
        // A device that applied everything up to `start` from a full listing then replays.
        let mut feed: BTreeMap<NotificationId, _> = BTreeMap::new();
        let mut cursor = ChangeSeq::ZERO;
        loop {
            let page = harness
                .service
                .changes_since(caller(&alice), cursor, 2)
                .await
                .unwrap();
            for change in page.changes {
                assert!(change.change_seq > cursor || start > 0);
                feed.insert(change.id, change);
            }
            cursor = page.cursor;
            if !page.has_more {
                break;
            }
        }
        let mut live: Vec<_> = feed
            .into_values()
            .filter(|n| n.status == Status::Active)
            .collect();
        live.sort_by_key(|n| std::cmp::Reverse(n.id));
        let listing = harness
            .service
            .list(caller(&alice), &ListQuery::default())
            .await
            .unwrap();
        assert_eq!(live, listing.notifications);
        let tail = harness
            .service
            .changes_since(caller(&alice), ChangeSeq::new(start), 100)
            .await
            .unwrap();
        assert!(
            tail.changes
                .iter()
                .all(|n| n.change_seq > ChangeSeq::new(start))
        );
    }
}

/// Contract: subscribing again renews.
pub async fn subscribing_again_renews(harness: Harness) {
    let alice = user("alice");
    let first = harness
        .service
        .subscribe(caller(&alice), channel("android", 1))
        .await
        .unwrap();
    assert!(!first.renewed);
    harness.advance(Duration::from_secs(3600));
    let again = harness
        .service
        .subscribe(caller(&alice), channel("android", 1))
        .await
        .unwrap();
    assert!(again.renewed);
    assert_eq!(again.subscription.id, first.subscription.id);
    assert!(again.subscription.expires_at > first.subscription.expires_at);
    assert_eq!(
        harness
            .service
            .subscriptions(caller(&alice))
            .await
            .unwrap()
            .len(),
        1
    );
    // The same device signed in by another user moves to that user.
    let bob = user("bob");
    let moved = harness
        .service
        .subscribe(caller(&bob), channel("android", 1))
        .await
        .unwrap();
    assert_eq!(moved.subscription.id, first.subscription.id);
    assert!(
        harness
            .service
            .subscriptions(caller(&alice))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        harness
            .service
            .subscriptions(caller(&bob))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Contract: subscriptions are capped and removable.
pub async fn subscriptions_are_capped_and_removable(harness: Harness) {
    let alice = user("alice");
    let bob = user("bob");
    let mut ids = Vec::new();
    for device in 0..100 {
        ids.push(
            harness
                .service
                .subscribe(caller(&alice), channel("android", device))
                .await
                .unwrap(),
        );
    }
    assert!(matches!(
        harness
            .service
            .subscribe(caller(&alice), channel("android", 100))
            .await,
        Err(Error::LimitExceeded { limit: 100, .. })
    ));
    let victim = ids[0].subscription.id;
    assert_eq!(
        harness.service.unsubscribe(caller(&bob), victim).await,
        Err(Error::NotFound)
    );
    harness
        .service
        .unsubscribe(caller(&alice), victim)
        .await
        .unwrap();
    assert_eq!(
        harness.service.unsubscribe(caller(&alice), victim).await,
        Err(Error::NotFound)
    );
    harness
        .service
        .subscribe(caller(&alice), channel("android", 100))
        .await
        .unwrap();
}

/// Contract: app only callers name the user by subscription.
pub async fn app_only_callers_name_the_user_by_subscription(harness: Harness) {
    let bob = user("bob");
    let subscription = harness
        .service
        .subscribe(caller(&bob), channel("ios", 7))
        .await
        .unwrap();
    let id_text = subscription.subscription.id.to_string();
    let service = app_only("demo-app-service");
    let as_bob = Caller {
        principal: &service,
        subscription_id: Some(&id_text),
    };
    let created = harness
        .service
        .create(as_bob, draft("for-bob"))
        .await
        .unwrap();
    assert_eq!(created.notification.feed.user.as_str(), "bob");
    let listing = harness
        .service
        .list(caller(&bob), &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(listing.notifications.len(), 1);
    let foreign = app_only("other-service");
    let intruder = Caller {
        principal: &foreign,
        subscription_id: Some(&id_text),
    };
    assert_eq!(
        harness.service.create(intruder, draft("x")).await,
        Err(Error::NotFound)
    );
    let unnamed = Caller {
        principal: &service,
        subscription_id: None,
    };
    assert!(matches!(
        harness.service.create(unnamed, draft("x")).await,
        Err(Error::PermissionDenied(_))
    ));
    let malformed = Caller {
        principal: &service,
        subscription_id: Some("not-an-id"),
    };
    assert!(matches!(
        harness.service.create(malformed, draft("x")).await,
        Err(Error::Invalid(_))
    ));
}

/// Contract: other users and apps see nothing.
pub async fn other_users_and_apps_see_nothing(harness: Harness) {
    let alice = user("alice");
    let created = harness
        .service
        .create(caller(&alice), grouped("secret", "g"))
        .await
        .unwrap();
    let id = created.notification.id;
    let bob = user("bob");
    let mallory = delegated("alice", "other-client");
    for intruder in [&bob, &mallory] {
        assert_eq!(
            harness.service.get(caller(intruder), id).await,
            Err(Error::NotFound)
        );
        assert_eq!(
            harness
                .service
                .update_state(caller(intruder), Target::Id(id), read())
                .await,
            Err(Error::NotFound)
        );
        assert_eq!(
            harness
                .service
                .delete(caller(intruder), by_key("secret"))
                .await,
            Err(Error::NotFound)
        );
        assert_eq!(
            harness.service.delivery_status(caller(intruder), id).await,
            Err(Error::NotFound)
        );
        let page = harness
            .service
            .list(caller(intruder), &ListQuery::default())
            .await
            .unwrap();
        assert!(page.notifications.is_empty());
        let changes = harness
            .service
            .changes_since(caller(intruder), ChangeSeq::ZERO, 10)
            .await
            .unwrap();
        assert!(changes.changes.is_empty());
    }
    // The other app's caller cannot even name the demo app's host.
    assert!(matches!(
        harness.service.create(caller(&mallory), draft("x")).await,
        Err(Error::Invalid(errors)) if errors.names("targetHostName")
    ));
    assert_eq!(
        harness.service.get(caller(&alice), id).await.unwrap().id,
        id
    );
}

/// Contract: leases hide jobs until they lapse.
pub async fn leases_hide_jobs_until_they_lapse(harness: Harness) {
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
    let now = harness.clock_now();
    assert_eq!(harness.store.next_due().await.unwrap(), Some(now));
    assert_eq!(
        harness.store.lease_due(now, 10, LEASE).await.unwrap().len(),
        1
    );
    assert!(
        harness
            .store
            .lease_due(now, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        harness.store.next_due().await.unwrap(),
        Some(now.saturating_add(LEASE))
    );
    harness.advance(LEASE);
    let again = harness
        .store
        .lease_due(harness.clock_now(), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "a crashed dispatcher's job comes back");
}

/// Contract: a released job is due again at once with its attempts unchanged, and a
/// release of a job changed since leaves it alone.
pub async fn released_jobs_are_due_again_unchanged(harness: Harness) {
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
    let now = harness.clock_now();
    let leased = harness.store.lease_due(now, 10, LEASE).await.unwrap();
    assert_eq!(leased.len(), 1);
    let job = leased[0].job.clone();
    let soon = now.saturating_add(Duration::from_secs(1));
    harness
        .store
        .release(vec![job.clone()], soon)
        .await
        .unwrap();
    assert_eq!(harness.store.next_due().await.unwrap(), Some(soon));
    let again = harness.store.lease_due(soon, 10, LEASE).await.unwrap();
    assert_eq!(again.len(), 1, "due again long before its lease would end");
    assert_eq!(again[0].job.attempts, job.attempts);
    assert_eq!(again[0].job.change_seq, job.change_seq);
    // The first lease's job is stale now: releasing it again changes nothing.
    harness.store.release(vec![job], now).await.unwrap();
    assert!(
        harness
            .store
            .lease_due(soon, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Subscribes `alice` on `devices` Android devices and makes the store see a dispatcher
/// leasing, so the jobs of later writes are handed over leased.
async fn leasing_dispatcher_for(harness: &Harness, alice: &Principal, devices: u32) {
    for device in 0..devices {
        harness
            .service
            .subscribe(caller(alice), channel("android", device))
            .await
            .unwrap();
    }
    let nothing_yet = harness
        .store
        .lease_due(harness.clock_now(), 10, LEASE)
        .await
        .unwrap();
    assert!(nothing_yet.is_empty());
}

async fn create(harness: &Harness, principal: &Principal, draft: NotificationDraft) -> Created {
    harness
        .service
        .create(caller(principal), draft)
        .await
        .unwrap()
}

/// The keys of every job leased at `now`, `limit` at a time, until none is due.
async fn lease_all(
    harness: &Harness,
    now: Timestamp,
    limit: usize,
) -> Vec<(NotificationId, SubscriptionId)> {
    let mut keys = Vec::new();
    loop {
        let leased = harness.store.lease_due(now, limit, LEASE).await.unwrap();
        if leased.is_empty() {
            return keys;
        }
        keys.extend(leased.iter().map(|leased| leased.job.key()));
    }
}

/// Contract: jobs written while a dispatcher leases come leased.
pub async fn jobs_written_while_a_dispatcher_leases_come_leased(harness: Harness) {
    let alice = user("alice");
    leasing_dispatcher_for(&harness, &alice, 2).await;
    let created = create(&harness, &alice, draft("n1")).await;
    let now = harness.clock_now();
    assert_eq!(
        harness.store.next_due().await.unwrap(),
        Some(now),
        "the jobs are ready at once"
    );
    let leased = harness.store.lease_due(now, 10, LEASE).await.unwrap();
    assert_eq!(leased.len(), 2);
    for leased in &leased {
        assert_eq!(leased.notification, created.notification);
        assert_eq!(leased.job.subscription, leased.subscription.id);
        assert_eq!(leased.job.due, now.saturating_add(LEASE));
    }
    assert!(lease_all(&harness, now, 10).await.is_empty(), "leased once");
    assert_eq!(
        harness.store.next_due().await.unwrap(),
        Some(now.saturating_add(LEASE))
    );
    harness.advance(LEASE);
    let again = lease_all(&harness, harness.clock_now(), 10).await;
    assert_eq!(again.len(), 2, "a crashed dispatcher's jobs come back");
}

/// Contract: jobs left past their lease are leased once.
pub async fn jobs_left_past_their_lease_are_leased_once(harness: Harness) {
    let alice = user("alice");
    leasing_dispatcher_for(&harness, &alice, 2).await;
    create(&harness, &alice, draft("n1")).await;
    // Nobody takes the jobs until their lease has lapsed: they are due in the store.
    harness.advance(LEASE);
    let leased = lease_all(&harness, harness.clock_now(), 10).await;
    assert_eq!(leased.len(), 2, "each job once: {leased:?}");
}

/// Contract: jobs beyond the hand off capacity are queued due.
pub async fn jobs_beyond_the_hand_off_capacity_are_queued_due(harness: Harness) {
    let alice = user("alice");
    leasing_dispatcher_for(&harness, &alice, 4).await;
    for number in 0..300 {
        create(&harness, &alice, draft(&format!("n{number}"))).await;
    }
    let mut leased = lease_all(&harness, harness.clock_now(), 100).await;
    assert_eq!(leased.len(), 1_200);
    leased.sort();
    leased.dedup();
    assert_eq!(leased.len(), 1_200, "no job leased twice");
}

/// Contract: due jobs are leased beside handed over ones.
pub async fn due_jobs_are_leased_beside_handed_over_ones(harness: Harness) {
    let alice = user("alice");
    leasing_dispatcher_for(&harness, &alice, 1).await;
    create(&harness, &alice, draft("n1")).await;
    let now = harness.clock_now();
    let first = harness.store.lease_due(now, 10, LEASE).await.unwrap();
    let retry_at = now.saturating_add(Duration::from_secs(2));
    harness
        .store
        .settle(
            vec![(
                first[0].job.clone(),
                Settlement::Reschedule { due: retry_at },
            )],
            now,
        )
        .await
        .unwrap();
    harness.advance(Duration::from_secs(2));
    create(&harness, &alice, draft("n2")).await;
    let leased = harness.store.lease_due(retry_at, 10, LEASE).await.unwrap();
    let mut attempts: Vec<u32> = leased.iter().map(|leased| leased.job.attempts).collect();
    attempts.sort();
    assert_eq!(attempts, [0, 1], "the new job and the retry");
}

/// Contract: jobs written due are leased beside handed over ones.
pub async fn jobs_written_due_are_leased_beside_handed_over_ones(harness: Harness) {
    let alice = user("alice");
    leasing_dispatcher_for(&harness, &alice, 1).await;
    create(&harness, &alice, draft("n1")).await;
    // Expiring within the lease, its job is written due, not handed over.
    let short = NotificationDraft {
        expiration_date_time: Some(
            harness
                .clock_now()
                .saturating_add(Duration::from_secs(20))
                .to_rfc3339(),
        ),
        ..draft("short")
    };
    harness.service.create(caller(&alice), short).await.unwrap();
    let leased = harness
        .store
        .lease_due(harness.clock_now(), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(leased.len(), 2, "the handed-over job and the due one");
}

/// Contract: settlements update jobs and status.
pub async fn settlements_update_jobs_and_status(harness: Harness) {
    let alice = user("alice");
    for (platform, device) in [("windows", 1), ("android", 2), ("ios", 3)] {
        harness
            .service
            .subscribe(caller(&alice), channel(platform, device))
            .await
            .unwrap();
    }
    let created = harness
        .service
        .create(caller(&alice), draft("n1"))
        .await
        .unwrap();
    let now = harness.clock_now();
    let leased = harness.store.lease_due(now, 10, LEASE).await.unwrap();
    let by_platform = |platform| leased.iter().find(|l| l.job.platform == platform).unwrap();
    let retry_at = now.saturating_add(Duration::from_secs(4));
    harness
        .store
        .settle(
            vec![(
                by_platform(Platform::Windows).job.clone(),
                Settlement::Done(DeliveryState::Delivered {
                    at: now,
                    text_shortened: false,
                }),
            )],
            now,
        )
        .await
        .unwrap();
    harness
        .store
        .settle(
            vec![(
                by_platform(Platform::Android).job.clone(),
                Settlement::Reschedule { due: retry_at },
            )],
            now,
        )
        .await
        .unwrap();
    harness
        .store
        .settle(
            vec![(
                by_platform(Platform::Ios).job.clone(),
                Settlement::RemoveSubscription,
            )],
            now,
        )
        .await
        .unwrap();
    let status = harness
        .service
        .delivery_status(caller(&alice), created.notification.id)
        .await
        .unwrap();
    let state_of = |platform| {
        let record = status.iter().find(|r| r.platform == platform).unwrap();
        (record.state.clone(), record.attempts)
    };
    assert_eq!(
        state_of(Platform::Windows),
        (
            DeliveryState::Delivered {
                at: now,
                text_shortened: false,
            },
            1
        )
    );
    assert_eq!(
        state_of(Platform::Android),
        (
            DeliveryState::Retrying {
                next_attempt: retry_at
            },
            1
        )
    );
    assert_eq!(state_of(Platform::Ios), (DeliveryState::EndpointGone, 1));
    let subscriptions = harness.service.subscriptions(caller(&alice)).await.unwrap();
    assert_eq!(subscriptions.len(), 2, "the gone endpoint was pruned");
    assert_eq!(harness.store.next_due().await.unwrap(), Some(retry_at));
    let retried = harness.store.lease_due(retry_at, 10, LEASE).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].job.attempts, 1);
}

/// Contract: a newer change supersedes an in flight job.
pub async fn a_newer_change_supersedes_an_in_flight_job(harness: Harness) {
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
    let now = harness.clock_now();
    let in_flight = harness
        .store
        .lease_due(now, 10, LEASE)
        .await
        .unwrap()
        .remove(0);
    harness
        .service
        .update_state(caller(&alice), by_key("n1"), read())
        .await
        .unwrap();
    assert!(
        harness
            .store
            .lease_due(now, 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "the newer change waits for the in-flight one, so pushes never overtake each other"
    );
    harness
        .store
        .settle(
            vec![(
                in_flight.job.clone(),
                Settlement::Done(DeliveryState::Delivered {
                    at: now,
                    text_shortened: false,
                }),
            )],
            now,
        )
        .await
        .unwrap();
    let newer = harness.store.lease_due(now, 10, LEASE).await.unwrap();
    assert_eq!(newer.len(), 1, "the state sync is still queued");
    assert!(newer[0].job.change_seq > in_flight.job.change_seq);
}

/// Contract: expiry removes everything.
pub async fn expiry_removes_everything(harness: Harness) {
    let alice = user("alice");
    harness
        .service
        .subscribe(caller(&alice), channel("android", 1))
        .await
        .unwrap();
    let soon = harness
        .clock_now()
        .saturating_add(Duration::from_secs(60))
        .to_rfc3339();
    let short = NotificationDraft {
        expiration_date_time: Some(soon),
        ..grouped("short", "g")
    };
    let expiring = harness.service.create(caller(&alice), short).await.unwrap();
    let lasting = harness
        .service
        .create(caller(&alice), draft("long"))
        .await
        .unwrap();
    harness.advance(Duration::from_secs(61));
    let now = harness.clock_now();
    assert_eq!(
        harness
            .service
            .get(caller(&alice), expiring.notification.id)
            .await,
        Err(Error::NotFound)
    );
    assert_eq!(harness.store.expire(now, 100).await.unwrap(), 1);
    let page = harness
        .service
        .list(
            caller(&alice),
            &ListQuery {
                status: None,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.notifications, vec![lasting.notification.clone()]);
    assert_eq!(page.unread_count, 1);
    let changes = harness
        .service
        .changes_since(caller(&alice), ChangeSeq::ZERO, 100)
        .await
        .unwrap();
    assert_eq!(changes.changes.len(), 1);
    let leased = harness.store.lease_due(now, 10, LEASE).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].notification.id, lasting.notification.id);
    assert_eq!(
        harness
            .service
            .delete(caller(&alice), Target::Group(GroupName::new("g").unwrap()))
            .await,
        Err(Error::NotFound)
    );
    // The expired key is free again.
    let reused = harness
        .service
        .create(caller(&alice), draft("short"))
        .await
        .unwrap();
    assert!(!reused.replaced);
}

/// Contract: jobs of expired notifications are dropped.
pub async fn jobs_of_expired_notifications_are_dropped(harness: Harness) {
    let alice = user("alice");
    harness
        .service
        .subscribe(caller(&alice), channel("windows", 1))
        .await
        .unwrap();
    let soon = harness
        .clock_now()
        .saturating_add(Duration::from_secs(10))
        .to_rfc3339();
    let created = harness
        .service
        .create(
            caller(&alice),
            NotificationDraft {
                expiration_date_time: Some(soon),
                ..draft("n")
            },
        )
        .await
        .unwrap();
    harness.advance(Duration::from_secs(10));
    assert!(
        harness
            .store
            .lease_due(harness.clock_now(), 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    let status = harness
        .store
        .delivery_status(&created.notification.feed, created.notification.id)
        .await
        .unwrap();
    assert_eq!(status[0].state, DeliveryState::Expired);
}

/// Contract: subscriptions lapse.
pub async fn subscriptions_lapse(harness: Harness) {
    let alice = user("alice");
    harness
        .service
        .subscribe(caller(&alice), channel("android", 1))
        .await
        .unwrap();
    harness.advance(Duration::from_secs(31 * 24 * 3600));
    harness
        .store
        .expire(harness.clock_now(), 100)
        .await
        .unwrap();
    assert!(
        harness
            .service
            .subscriptions(caller(&alice))
            .await
            .unwrap()
            .is_empty()
    );
    harness
        .service
        .create(caller(&alice), draft("n"))
        .await
        .unwrap();
    assert!(
        harness
            .store
            .lease_due(harness.clock_now(), 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn deliver_everything(harness: &Harness) {
    let now = harness.clock_now();
    for leased in harness.store.lease_due(now, 1000, LEASE).await.unwrap() {
        harness
            .store
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
}

impl Harness {
    pub(crate) fn clock_now(&self) -> notif_core::time::Timestamp {
        use notif_core::ports::Clock as _;
        self.clock.now()
    }
}

/// Writes queued together are grouped into one commit; each must still see the ones before
/// it (counters, appNotificationId upserts, subscriptions), and one failing must not take
/// the others down.
/// Contract: concurrent writes each see the ones before.
pub async fn concurrent_writes_each_see_the_ones_before(harness: Harness) {
    let alice = user("alice");
    harness
        .service
        .subscribe(caller(&alice), channel("android", 1))
        .await
        .unwrap();
    let harness = std::sync::Arc::new(harness);
    let mut writes = tokio::task::JoinSet::new();
    for index in 0..40 {
        let (harness, alice) = (harness.clone(), alice.clone());
        writes.spawn(async move {
            let key = if index % 4 == 0 {
                "shared".to_owned()
            } else {
                format!("n{index}")
            };
            harness
                .service
                .create(caller(&alice), draft(&key))
                .await
                .map(|created| created.replaced)
        });
    }
    let (failing_harness, alice_again) = (harness.clone(), alice.clone());
    let failing = tokio::spawn(async move {
        failing_harness
            .service
            .unsubscribe(
                caller(&alice_again),
                notif_core::ids::SubscriptionId::from_parts(9, [9; 10]),
            )
            .await
    });
    let replaced: Vec<bool> = writes
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(matches!(failing.await.unwrap(), Err(Error::NotFound)));

    assert_eq!(
        replaced.iter().filter(|replaced| !**replaced).count(),
        31,
        "30 keys + shared once"
    );
    let page = harness
        .service
        .list(
            caller(&alice),
            &ListQuery {
                page_size: 100,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.notifications.len(), 31);
    assert_eq!(page.unread_count, 31);
    let mut seqs: Vec<u64> = page
        .notifications
        .iter()
        .map(|n| n.change_seq.value())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 31, "every write took its own change seq");
    assert_eq!(*seqs.last().unwrap(), 40, "40 writes, 40 seqs");
    let jobs = harness
        .store
        .lease_due(harness.clock_now(), 100, LEASE)
        .await
        .unwrap();
    assert_eq!(
        jobs.len(),
        31,
        "one job per notification for the one device"
    );
}

fn signing_key(kid: &str) -> notif_core::ports::StoredSigningKey {
    notif_core::ports::StoredSigningKey {
        kid: kid.into(),
        pkcs8: kid.as_bytes().repeat(8),
    }
}

/// Contract: the first signing key offered is the one every node keeps; rotations come after
/// it, oldest first.
pub async fn signing_keys_are_kept_once_and_in_order(harness: Harness) {
    let store = &harness.store;
    assert!(store.signing_keys().await.unwrap().is_empty());
    let first = store.add_signing_key(signing_key("a"), true).await.unwrap();
    assert_eq!(first, vec![signing_key("a")]);
    // Another node offering its own first key adopts the one already there.
    let raced = store.add_signing_key(signing_key("b"), true).await.unwrap();
    assert_eq!(raced, vec![signing_key("a")]);
    let rotated = store
        .add_signing_key(signing_key("c"), false)
        .await
        .unwrap();
    assert_eq!(rotated, vec![signing_key("a"), signing_key("c")]);
    assert_eq!(store.signing_keys().await.unwrap(), rotated);
}

/// Contract: a refresh token is spent once, by the client it was issued to, before it
/// expires; the expiry sweep removes it.
pub async fn refresh_tokens_are_spent_once(harness: Harness) {
    use notif_core::ids::ClientId;
    use notif_core::ports::{RefreshGrant, SpentRefresh};
    let store = &harness.store;
    let now = harness.clock_now();
    let device = ClientId::new("demo-client").unwrap();
    let other = ClientId::new("other-client").unwrap();
    let grant = RefreshGrant {
        user: notif_core::ids::UserId::new("alice").unwrap(),
        client: device.clone(),
        expires_at: now.saturating_add(Duration::from_secs(60)),
    };
    store.grant_refresh("token-1", grant.clone()).await.unwrap();
    assert_eq!(
        store.spend_refresh("token-1", &other, now).await.unwrap(),
        SpentRefresh::OtherClient
    );
    assert_eq!(
        store.spend_refresh("token-1", &device, now).await.unwrap(),
        SpentRefresh::Granted(grant.clone()),
        "another client's attempt did not spend it"
    );
    assert_eq!(
        store.spend_refresh("token-1", &device, now).await.unwrap(),
        SpentRefresh::AlreadyUsed
    );
    assert_eq!(
        store
            .spend_refresh("never-issued", &device, now)
            .await
            .unwrap(),
        SpentRefresh::Unknown
    );
    store.grant_refresh("token-2", grant.clone()).await.unwrap();
    let later = now.saturating_add(Duration::from_secs(60));
    assert_eq!(
        store
            .spend_refresh("token-2", &device, later)
            .await
            .unwrap(),
        SpentRefresh::Expired
    );
    assert!(store.expire(later, 100).await.unwrap() >= 2);
    assert_eq!(
        store
            .spend_refresh("token-2", &device, later)
            .await
            .unwrap(),
        SpentRefresh::Unknown,
        "swept"
    );
}

/// Contract: a reader starting at the latest change gets only the changes after it.
pub async fn latest_starts_after_the_last_change(harness: Harness) {
    use notif_core::service::Cursor;
    let alice = user("alice");
    let empty = harness
        .service
        .resolve_cursor(caller(&alice), Cursor::Latest)
        .await
        .unwrap();
    assert_eq!(empty, ChangeSeq::new(0), "a feed never written");
    create(&harness, &alice, draft("n1")).await;
    create(&harness, &alice, draft("n2")).await;
    let latest = harness
        .service
        .resolve_cursor(caller(&alice), Cursor::Latest)
        .await
        .unwrap();
    assert_eq!(latest, ChangeSeq::new(2));
    let nothing_yet = harness
        .service
        .changes_since(caller(&alice), latest, 10)
        .await
        .unwrap();
    assert!(nothing_yet.changes.is_empty());
    create(&harness, &alice, draft("n3")).await;
    let after = harness
        .service
        .changes_since(caller(&alice), latest, 10)
        .await
        .unwrap();
    let keys: Vec<_> = after
        .changes
        .iter()
        .map(|notification| notification.app_notification_id.as_str())
        .collect();
    assert_eq!(keys, ["n3"]);
}

/// A raw notification with visual content and a fallback to iOS after a minute.
fn with_fallback(key: &str) -> NotificationDraft {
    NotificationDraft {
        raw_content: Some(format!("raw of {key}")),
        fallback_policy: Some(FallbackPolicyDraft {
            platform_types: vec!["iOS".into()],
            fallback_delay_in_seconds: Some(Scalar::Number(60)),
        }),
        ..draft(key)
    }
}

/// Leases what is due now.
async fn lease_now(harness: &Harness) -> Vec<LeasedJob> {
    harness
        .store
        .lease_due(harness.clock_now(), 10, LEASE)
        .await
        .unwrap()
}

/// Settles `leased` as the dispatcher does when the provider accepted every push.
async fn deliver_all(harness: &Harness, leased: &[LeasedJob]) {
    let now = harness.clock_now();
    let delivered = DeliveryOutcome::Delivered {
        text_shortened: false,
    };
    let settlements = leased
        .iter()
        .map(|leased| {
            let settlement = settle(
                &leased.job,
                &delivered,
                &RetryPolicy::default(),
                now,
                Jitter::new(0.5),
            );
            (leased.job.clone(), settlement)
        })
        .collect();
    harness.store.settle(settlements, now).await.unwrap();
}

/// The delivery state of `id` at `subscription`.
async fn state_at(
    harness: &Harness,
    principal: &Principal,
    id: NotificationId,
    subscription: SubscriptionId,
) -> DeliveryState {
    let status = harness
        .service
        .delivery_status(caller(principal), id)
        .await
        .unwrap();
    status
        .into_iter()
        .find(|record| record.subscription == subscription)
        .map(|record| record.state)
        .unwrap()
}

/// Contract: a fallback's visual push follows an unfetched raw push after its delay, and a
/// device that fetched the notification (reading it naming its subscription) gets none.
pub async fn a_fallback_follows_an_unfetched_raw_push(harness: Harness) {
    let alice = user("alice");
    let mut devices = Vec::new();
    for (platform, device) in [("ios", 1), ("ios", 2), ("android", 3)] {
        let outcome = harness
            .service
            .subscribe(caller(&alice), channel(platform, device))
            .await
            .unwrap();
        devices.push(outcome.subscription.id);
    }
    let created = harness
        .service
        .create(caller(&alice), with_fallback("n1"))
        .await
        .unwrap();
    let id = created.notification.id;
    assert!(created.notification.fallback_policy.is_some());
    let leased = lease_now(&harness).await;
    assert_eq!(leased.len(), 3);
    for leased in &leased {
        let armed = leased.job.platform == Platform::Ios;
        assert_eq!(
            matches!(leased.job.fallback, JobFallback::Armed { .. }),
            armed,
            "{:?}",
            leased.job
        );
    }
    deliver_all(&harness, &leased).await;
    let fallback_at = harness.clock_now().saturating_add(Duration::from_secs(60));
    for device in &devices[..2] {
        assert_eq!(
            state_at(&harness, &alice, id, *device).await,
            DeliveryState::AwaitingFetch { fallback_at }
        );
    }
    assert!(matches!(
        state_at(&harness, &alice, id, devices[2]).await,
        DeliveryState::Delivered { .. }
    ));

    // The first iPhone opens the app and reads the notification, naming its subscription.
    harness.advance(Duration::from_secs(30));
    let fetched_at = harness.clock_now();
    let device_1 = devices[0].to_string();
    let reading = Caller {
        principal: &alice,
        subscription_id: Some(&device_1),
    };
    harness.service.get(reading, id).await.unwrap();
    assert_eq!(
        state_at(&harness, &alice, id, devices[0]).await,
        DeliveryState::Fetched { at: fetched_at }
    );
    assert!(
        lease_now(&harness).await.is_empty(),
        "nothing is due before the delay"
    );

    harness.advance(Duration::from_secs(31));
    let leased = lease_now(&harness).await;
    assert_eq!(leased.len(), 1, "only the device that did not fetch");
    assert_eq!(leased[0].job.subscription, devices[1]);
    assert_eq!(leased[0].job.fallback, JobFallback::Visual);
    deliver_all(&harness, &leased).await;
    assert_eq!(
        state_at(&harness, &alice, id, devices[1]).await,
        DeliveryState::FallbackDelivered {
            at: harness.clock_now(),
            text_shortened: false
        }
    );
    assert_eq!(harness.store.next_due().await.unwrap(), None);
    assert_eq!(
        state_at(&harness, &alice, id, devices[0]).await,
        DeliveryState::Fetched { at: fetched_at }
    );
}

/// Contract: an acknowledgement while the raw push is on its way disarms its fallback; a
/// replace supersedes a waiting fallback; a fallback due after the notification expires is
/// dropped with it; only the user's own devices acknowledge.
pub async fn fallbacks_are_disarmed_superseded_and_expire(harness: Harness) {
    let alice = user("alice");
    let mut devices = Vec::new();
    for device in [1, 2] {
        let outcome = harness
            .service
            .subscribe(caller(&alice), channel("ios", device))
            .await
            .unwrap();
        devices.push(outcome.subscription.id);
    }
    let bob = user("bob");
    let bobs = harness
        .service
        .subscribe(caller(&bob), channel("ios", 9))
        .await
        .unwrap()
        .subscription
        .id;
    let first = harness
        .service
        .create(caller(&alice), with_fallback("n1"))
        .await
        .unwrap()
        .notification;
    let leased = lease_now(&harness).await;
    assert_eq!(leased.len(), 2);
    for stranger in [bobs, SubscriptionId::from_parts(1, [7; 10])] {
        assert_eq!(
            harness
                .service
                .acknowledge(caller(&alice), first.id, stranger)
                .await,
            Err(Error::NotFound)
        );
    }
    harness
        .service
        .acknowledge(caller(&alice), first.id, devices[0])
        .await
        .unwrap();
    deliver_all(&harness, &leased).await;
    assert!(matches!(
        state_at(&harness, &alice, first.id, devices[0]).await,
        DeliveryState::Delivered { .. }
    ));
    assert!(matches!(
        state_at(&harness, &alice, first.id, devices[1]).await,
        DeliveryState::AwaitingFetch { .. }
    ));

    // A replace supersedes the waiting fallback: the new content's raw push goes out now.
    harness.advance(Duration::from_secs(10));
    let replaced = harness
        .service
        .create(caller(&alice), with_fallback("n1"))
        .await
        .unwrap();
    assert!(replaced.replaced);
    let leased = lease_now(&harness).await;
    let to_second = leased
        .iter()
        .find(|leased| leased.job.subscription == devices[1])
        .unwrap();
    assert_eq!(to_second.job.change_seq, replaced.notification.change_seq);
    assert!(matches!(to_second.job.fallback, JobFallback::Armed { .. }));
    deliver_all(&harness, &leased).await;

    // A fallback that would come after the notification's expiration is never sent.
    let short = NotificationDraft {
        expiration_date_time: Some(
            harness
                .clock_now()
                .saturating_add(Duration::from_secs(90))
                .to_rfc3339(),
        ),
        ..with_fallback("short")
    };
    let short = harness
        .service
        .create(caller(&alice), short)
        .await
        .unwrap()
        .notification;
    let leased = lease_now(&harness).await;
    assert_eq!(leased.len(), 2);
    deliver_all(&harness, &leased).await;
    harness.advance(Duration::from_secs(95));
    let leased = lease_now(&harness).await;
    // What is due: the replacement's fallbacks (its raw pushes were delivered and nobody
    // fetched it), not the expired one's.
    assert_eq!(leased.len(), 2, "{leased:?}");
    for leased in &leased {
        assert_eq!(leased.notification.id, first.id);
        assert_eq!(leased.job.fallback, JobFallback::Visual);
    }
    deliver_all(&harness, &leased).await;
    assert_eq!(harness.store.next_due().await.unwrap(), None);
    assert_eq!(
        harness.service.get(caller(&alice), short.id).await,
        Err(Error::NotFound),
        "expired"
    );
}
