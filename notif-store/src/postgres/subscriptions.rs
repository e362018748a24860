//! Subscription writes: subscribe (or renew) and unsubscribe.

use deadpool_postgres::GenericClient;
use notif_core::ids::SubscriptionId;
use notif_core::notification::FeedKey;
use notif_core::ports::{StoreError, SubscribeOutcome};
use notif_core::subscription::Subscription;

use super::feed::lock_feed;
use super::rows::{self, feed_columns};
use super::tx::{TxError, execute, query};
use crate::records::{self, SubscriptionRecord};

/// Stores a subscription, or renews the one with the same channel identity in the same app.
/// The user's feed row is locked first, so two subscribes of one user cannot both pass the
/// cap; two first subscribes of one channel collide on its unique key, and the loser's
/// re-run renews.
pub(crate) async fn subscribe(
    client: &impl GenericClient,
    candidate: Subscription,
    max_per_user: usize,
) -> Result<SubscribeOutcome, TxError> {
    lock_feed(client, &candidate.feed).await?;
    let app = candidate.feed.app.as_str();
    let channel = candidate.channel.identity();
    let existing = query(
        client,
        "SELECT id, record FROM notif_subscriptions WHERE app = $1 AND channel = $2 FOR UPDATE",
        &[&app, &channel],
    )
    .await?
    .first()
    .map(rows::subscription)
    .transpose()?;
    let joins_feed = existing
        .as_ref()
        .is_none_or(|existing| existing.feed != candidate.feed);
    if joins_feed {
        let (app, user) = feed_columns(&candidate.feed);
        let cap = i64::try_from(max_per_user.max(1)).unwrap_or(i64::MAX);
        let held = query(
            client,
            "SELECT count(*) FROM (SELECT 1 FROM notif_subscriptions \
             WHERE app = $1 AND usr = $2 LIMIT $3) AS held",
            &[&app, &user, &cap],
        )
        .await?
        .first()
        .map(|row| row.get::<_, i64>(0))
        .unwrap_or_default();
        if usize::try_from(held).unwrap_or(usize::MAX) >= max_per_user {
            return Err(TxError::Store(StoreError::LimitExceeded {
                what: "subscriptions per user and app",
                limit: max_per_user,
            }));
        }
    }
    let subscription = match &existing {
        Some(existing) => Subscription {
            id: existing.id,
            created_at: existing.created_at,
            ..candidate
        },
        None => candidate,
    };
    let (app, user) = feed_columns(&subscription.feed);
    let record = records::encode(&SubscriptionRecord::from(&subscription));
    execute(
        client,
        "INSERT INTO notif_subscriptions (id, app, usr, channel, expires_at, record) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET usr = EXCLUDED.usr, channel = EXCLUDED.channel, \
           expires_at = EXCLUDED.expires_at, record = EXCLUDED.record",
        &[
            subscription.id.as_uuid(),
            &app,
            &user,
            &channel,
            &subscription.expires_at.unix_millis(),
            &record,
        ],
    )
    .await?;
    Ok(SubscribeOutcome {
        subscription,
        renewed: existing.is_some(),
    })
}

/// Removes a subscription of `feed`; its pending jobs are dropped when they come due.
pub(crate) async fn unsubscribe(
    client: &impl GenericClient,
    feed: &FeedKey,
    id: SubscriptionId,
) -> Result<(), TxError> {
    let (app, user) = feed_columns(feed);
    let removed = execute(
        client,
        "DELETE FROM notif_subscriptions WHERE id = $1 AND app = $2 AND usr = $3",
        &[id.as_uuid(), &app, &user],
    )
    .await?;
    if removed == 0 {
        return Err(TxError::Store(StoreError::NotFound));
    }
    Ok(())
}
