//! Subscription writes: subscribe (or renew), unsubscribe, and removing an endpoint.

use notif_core::ids::SubscriptionId;
use notif_core::notification::FeedKey;
use notif_core::ports::{StoreError, SubscribeOutcome};
use notif_core::subscription::Subscription;

use crate::engine::{Engine, Tree};
use crate::keys;
use crate::records::SubscriptionRecord;
use crate::tx::{Reader, Tx, scan_prefix};

use super::queue::release_leases;

/// Stores a subscription, or renews the one with the same channel identity in the same app.
pub(crate) fn subscribe<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    candidate: Subscription,
    max_per_user: usize,
) -> Result<SubscribeOutcome, StoreError> {
    let channel_key = keys::channel_key(&candidate.feed.app, &candidate.channel.identity());
    let existing = match tx.read(Tree::Channels, &channel_key)? {
        Some(bytes) => match keys::uuid_at(&bytes, 0) {
            Some(id) => tx.subscription(SubscriptionId::from_uuid(id))?,
            None => None,
        },
        None => None,
    };
    let joins_feed = existing
        .as_ref()
        .is_none_or(|existing| existing.feed != candidate.feed);
    if joins_feed {
        let held = scan_prefix(
            &*tx,
            Tree::FeedSubscriptions,
            &keys::feed_prefix(&candidate.feed),
            max_per_user.max(1),
        )?
        .len();
        if held >= max_per_user {
            return Err(StoreError::LimitExceeded {
                what: "subscriptions per user and app",
                limit: max_per_user,
            });
        }
    }
    let subscription = match &existing {
        Some(existing) => {
            // Jobs not yet sent go with what the renewal brings (keys, expiry).
            recall_handed_over(tx, existing.id)?;
            unindex_subscription(tx, existing);
            Subscription {
                id: existing.id,
                created_at: existing.created_at,
                ..candidate
            }
        }
        None => candidate,
    };
    tx.put(
        Tree::Subscriptions,
        subscription.id.as_bytes().to_vec(),
        &SubscriptionRecord::from(&subscription),
    );
    tx.put_raw(
        Tree::FeedSubscriptions,
        keys::feed_key(&subscription.feed, subscription.id.as_bytes()),
        &[],
    );
    tx.put_raw(
        Tree::SubscriptionExpiry,
        keys::subscription_expiry_key(subscription.expires_at, subscription.id),
        &[],
    );
    tx.put_raw(Tree::Channels, channel_key, subscription.id.as_bytes());
    Ok(SubscribeOutcome {
        subscription,
        renewed: existing.is_some(),
    })
}

/// Removes the per-feed and expiry index entries of a subscription.
fn unindex_subscription<E: Engine + ?Sized>(tx: &mut Tx<'_, E>, subscription: &Subscription) {
    tx.delete(
        Tree::FeedSubscriptions,
        keys::feed_key(&subscription.feed, subscription.id.as_bytes()),
    );
    tx.delete(
        Tree::SubscriptionExpiry,
        keys::subscription_expiry_key(subscription.expires_at, subscription.id),
    );
}

/// Removes a subscription and all its index entries. Its pending jobs are dropped when they
/// come due (the dispatcher finds no subscription).
pub(super) fn remove_subscription<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    subscription: &Subscription,
) -> Result<(), StoreError> {
    recall_handed_over(tx, subscription.id)?;
    unindex_subscription(tx, subscription);
    tx.delete(Tree::Subscriptions, subscription.id.as_bytes().to_vec());
    let channel_key = keys::channel_key(&subscription.feed.app, &subscription.channel.identity());
    let indexed = tx.read(Tree::Channels, &channel_key)?;
    if indexed.as_deref() == Some(subscription.id.as_bytes().as_slice()) {
        tx.delete(Tree::Channels, channel_key);
    }
    Ok(())
}

/// Removes a subscription of `feed`.
pub(crate) fn unsubscribe<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    feed: &FeedKey,
    id: SubscriptionId,
) -> Result<(), StoreError> {
    let subscription = tx
        .subscription(id)?
        .filter(|subscription| &subscription.feed == feed)
        .ok_or(StoreError::NotFound)?;
    remove_subscription(tx, &subscription)
}

/// Jobs of `subscription` still waiting in the hand-off were never sent: they are withdrawn
/// and made due, so the next lease decides on them with the subscription as it now is.
fn recall_handed_over<E: Engine + ?Sized>(
    tx: &mut Tx<'_, E>,
    subscription: SubscriptionId,
) -> Result<(), StoreError> {
    let withdrawn = tx.withdraw_handed_over_for(subscription);
    release_leases(tx, &withdrawn)
}
