//! The expiry sweep: notifications and subscriptions past their expiration leave the store.

use notif_core::ids::{NotificationId, SubscriptionId};
use notif_core::notification::Notification;
use notif_core::ports::StoreError;
use notif_core::queue;
use notif_core::time::Timestamp;

use crate::engine::{Engine, Tree};
use crate::keys;
use crate::records::JobRecord;
use crate::tx::{Reader, Tx, scan_prefix};

use super::feed::set_group_membership;
use super::queue::due_keys;
use super::subscriptions::remove_subscription;

/// Removes notifications, subscriptions and refresh grants expired at `now`, at most `limit`
/// of each.
pub(crate) fn expire<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    now: Timestamp,
    limit: usize,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for expiry_key in due_keys(&*tx, Tree::Expiry, now, limit)? {
        tx.delete(Tree::Expiry, expiry_key.clone());
        let Some((feed, rest)) = keys::split_feed(&expiry_key[8..]) else {
            continue;
        };
        let Some(id) = keys::uuid_at(rest, 0).map(NotificationId::from_uuid) else {
            continue;
        };
        let notification_key = keys::notification_key(&feed, id);
        let notification = match tx.notification(&feed, id) {
            Ok(Some(notification)) => notification,
            Ok(None) => continue,
            // An undecodable record cannot tell us its indexes; remove the record itself so
            // it stops failing reads, and let its orphaned index entries age out.
            Err(_) => {
                tx.delete(Tree::Notifications, notification_key);
                removed += 1;
                continue;
            }
        };
        // A later version may have moved the expiration; only the current one counts.
        if notification.expiration > now {
            continue;
        }
        remove_notification(tx, &notification)?;
        removed += 1;
    }
    for expiry_key in due_keys(&*tx, Tree::SubscriptionExpiry, now, limit)? {
        tx.delete(Tree::SubscriptionExpiry, expiry_key.clone());
        let Some(id) = keys::uuid_at(&expiry_key, 8).map(SubscriptionId::from_uuid) else {
            continue;
        };
        if let Some(subscription) = tx.subscription(id)?
            && !subscription.is_live(now)
        {
            remove_subscription(tx, &subscription)?;
            removed += 1;
        }
    }
    removed += super::identity::expire_grants(tx, now, limit)?;
    Ok(removed)
}

/// Removes a notification entirely: record, indexes, change-log entry, jobs and statuses.
fn remove_notification<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    notification: &Notification,
) -> Result<(), StoreError> {
    let feed = &notification.feed;
    let id = notification.id;
    tx.delete(Tree::Notifications, keys::notification_key(feed, id));
    tx.delete(
        Tree::Changes,
        keys::change_key(feed, notification.change_seq),
    );
    tx.delete(
        Tree::Expiry,
        keys::expiry_key(notification.expiration, feed, id),
    );
    let app_id_key = keys::feed_text_key(feed, notification.app_notification_id.as_str());
    if tx.read(Tree::AppIds, &app_id_key)?.as_deref() == Some(id.as_bytes().as_slice()) {
        tx.delete(Tree::AppIds, app_id_key);
    }
    if let Some(group) = &notification.group_name {
        set_group_membership(tx, feed, group, id, false)?;
    }
    if queue::counts_as_unread(notification) {
        let mut meta = tx.feed_meta(feed)?;
        meta.unread = meta.unread.saturating_sub(1);
        tx.put(Tree::Feeds, keys::feed_prefix(feed), &meta);
    }
    for (job_key, job_bytes) in scan_prefix(&*tx, Tree::Jobs, id.as_bytes(), usize::MAX)? {
        if let Ok((_, job)) = crate::records::decode::<JobRecord>(&job_key, &job_bytes)
            .and_then(|record| record.into_domain(&job_key))
        {
            tx.delete(
                Tree::Due,
                keys::due_key(job.due, &keys::job_key(job.notification, job.subscription)),
            );
        }
        tx.delete(Tree::Jobs, job_key);
    }
    for (status_key, _) in scan_prefix(&*tx, Tree::Status, id.as_bytes(), usize::MAX)? {
        tx.delete(Tree::Status, status_key);
    }
    Ok(())
}
