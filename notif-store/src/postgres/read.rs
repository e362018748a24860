//! The queries: listing, change replay, delivery status, subscriptions and queue figures.

use deadpool_postgres::GenericClient;
use notif_core::delivery::DeliveryRecord;
use notif_core::ids::{NotificationId, SubscriptionId};
use notif_core::notification::{ChangeSeq, FeedKey, Notification};
use notif_core::ports::{ChangePage, ListPage, ListQuery};
use notif_core::subscription::Subscription;
use notif_core::time::Timestamp;

use super::rows::{self, feed_columns};
use super::tx::{TxError, query};
use crate::read::{Pager, with_pending};

/// The first chunk a listing reads; each further chunk is four times the last, so a page
/// costs a few round trips however sparse its filter.
const FIRST_CHUNK_EXTRA: usize = 1;
const CHUNK_GROWTH: usize = 4;

/// A page of the feed, newest first (UUID v7 ids, descending), filled by the shared
/// [`Pager`] from chunks of rows until it is done or the feed ends.
pub(crate) async fn list(
    client: &impl GenericClient,
    feed: &FeedKey,
    list: &ListQuery,
    now: Timestamp,
) -> Result<ListPage, TxError> {
    let (app, user) = feed_columns(feed);
    let mut pager = Pager::new(list, now);
    let mut after = list.page_token;
    let mut chunk = list.page_size.saturating_add(FIRST_CHUNK_EXTRA).max(2);
    let unread = unread_count(client, feed);
    let page = async {
        loop {
            let limit = i64::try_from(chunk).unwrap_or(i64::MAX);
            let found = match after {
                Some(after) => {
                    query(
                        client,
                        "SELECT id, record FROM notif_notifications \
                         WHERE app = $1 AND usr = $2 AND id < $3 ORDER BY id DESC LIMIT $4",
                        &[&app, &user, after.as_uuid(), &limit],
                    )
                    .await?
                }
                None => {
                    query(
                        client,
                        "SELECT id, record FROM notif_notifications \
                         WHERE app = $1 AND usr = $2 ORDER BY id DESC LIMIT $3",
                        &[&app, &user, &limit],
                    )
                    .await?
                }
            };
            let exhausted = found.len() < chunk;
            for row in &found {
                let notification = rows::notification(row, feed)?;
                after = Some(notification.id);
                if pager.offer(notification).is_break() {
                    return Ok::<_, TxError>(pager.finish());
                }
            }
            if exhausted {
                return Ok(pager.finish());
            }
            chunk = chunk.saturating_mul(CHUNK_GROWTH);
        }
    };
    let ((notifications, next_page_token), unread_count) = futures_util::try_join!(page, unread)?;
    Ok(ListPage {
        notifications,
        next_page_token,
        unread_count,
    })
}

/// The feed's last change number (zero for a feed never written).
pub(crate) async fn last_change(
    client: &impl GenericClient,
    feed: &FeedKey,
) -> Result<ChangeSeq, TxError> {
    let (app, user) = feed_columns(feed);
    let found = query(
        client,
        "SELECT last_seq FROM notif_feeds WHERE app = $1 AND usr = $2",
        &[&app, &user],
    )
    .await?;
    Ok(ChangeSeq::new(
        found
            .first()
            .map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
            .unwrap_or_default(),
    ))
}

async fn unread_count(client: &impl GenericClient, feed: &FeedKey) -> Result<u64, TxError> {
    let (app, user) = feed_columns(feed);
    let found = query(
        client,
        "SELECT unread FROM notif_feeds WHERE app = $1 AND usr = $2",
        &[&app, &user],
    )
    .await?;
    Ok(found
        .first()
        .map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
        .unwrap_or_default())
}

/// The changes after `cursor`: the feed's notifications by their latest change number.
pub(crate) async fn changes_since(
    client: &impl GenericClient,
    feed: &FeedKey,
    cursor: ChangeSeq,
    limit: usize,
    now: Timestamp,
) -> Result<ChangePage, TxError> {
    let (app, user) = feed_columns(feed);
    let after = i64::try_from(cursor.value()).unwrap_or(i64::MAX);
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let found = query(
        client,
        "SELECT id, change_seq, record FROM notif_notifications \
         WHERE app = $1 AND usr = $2 AND change_seq > $3 ORDER BY change_seq LIMIT $4",
        &[&app, &user, &after, &fetch],
    )
    .await?;
    let has_more = found.len() > limit;
    let mut changes = Vec::with_capacity(found.len().min(limit));
    let mut next_cursor = cursor;
    for row in found.iter().take(limit) {
        // The cursor advances past every entry read, expired or not.
        next_cursor = ChangeSeq::new(u64::try_from(row.get::<_, i64>("change_seq")).unwrap_or(0));
        let notification = rows::notification(row, feed)?;
        if notification.expiration > now {
            changes.push(notification);
        }
    }
    Ok(ChangePage {
        changes,
        cursor: next_cursor,
        has_more,
    })
}

/// A notification of the feed unless expired.
pub(crate) async fn get(
    client: &impl GenericClient,
    feed: &FeedKey,
    id: NotificationId,
    now: Timestamp,
) -> Result<Option<Notification>, TxError> {
    Ok(notification(client, feed, id)
        .await?
        .filter(|notification| notification.expiration > now))
}

/// A notification of the feed, expired or not.
pub(crate) async fn notification(
    client: &impl GenericClient,
    feed: &FeedKey,
    id: NotificationId,
) -> Result<Option<Notification>, TxError> {
    let (app, user) = feed_columns(feed);
    let found = query(
        client,
        "SELECT id, record FROM notif_notifications WHERE app = $1 AND usr = $2 AND id = $3",
        &[&app, &user, id.as_uuid()],
    )
    .await?;
    Ok(found
        .first()
        .map(|row| rows::notification(row, feed))
        .transpose()?)
}

/// The delivery status of a notification of the feed at each endpoint (see
/// [`with_pending`]). Its status rows and its jobs are read by one statement, so in one
/// snapshot: a settlement removes a job and writes its status in one transaction, and an
/// endpoint is never seen between the two.
pub(crate) async fn delivery_status(
    client: &impl GenericClient,
    feed: &FeedKey,
    id: NotificationId,
) -> Result<Vec<DeliveryRecord>, TxError> {
    let (notification, found) = futures_util::try_join!(
        notification(client, feed, id),
        statuses_and_jobs(client, id),
    )?;
    let Some(notification) = notification else {
        return Ok(Vec::new());
    };
    let (statuses, jobs): (Vec<_>, Vec<_>) = found.iter().partition(|row| row.get("settled"));
    let statuses = statuses
        .into_iter()
        .map(rows::status)
        .collect::<Result<Vec<_>, _>>()?;
    let jobs = jobs.into_iter().filter_map(|row| {
        rows::job_record(row)
            .and_then(|(key, record)| record.into_domain(&key))
            .ok()
    });
    Ok(with_pending(
        &notification,
        statuses,
        jobs.map(|(_, job)| job),
    ))
}

/// The status rows (`settled`) and the job rows of a notification.
async fn statuses_and_jobs(
    client: &impl GenericClient,
    id: NotificationId,
) -> Result<Vec<tokio_postgres::Row>, TxError> {
    query(
        client,
        "SELECT true AS settled, notification, subscription, record \
           FROM notif_delivery_status WHERE notification = $1 \
         UNION ALL \
         SELECT false, notification, subscription, record FROM notif_jobs \
           WHERE notification = $1",
        &[id.as_uuid()],
    )
    .await
}

/// A subscription by id.
pub(crate) async fn subscription(
    client: &impl GenericClient,
    id: SubscriptionId,
) -> Result<Option<Subscription>, TxError> {
    let found = query(
        client,
        "SELECT id, record FROM notif_subscriptions WHERE id = $1",
        &[id.as_uuid()],
    )
    .await?;
    Ok(found.first().map(rows::subscription).transpose()?)
}

/// The statement of [`feed_subscriptions`].
pub(crate) const FEED_SUBSCRIPTIONS: &str =
    "SELECT id, record FROM notif_subscriptions WHERE app = $1 AND usr = $2 ORDER BY id";

/// The feed's subscriptions, live or not, in id order.
pub(crate) async fn feed_subscriptions(
    client: &impl GenericClient,
    feed: &FeedKey,
) -> Result<Vec<Subscription>, TxError> {
    let (app, user) = feed_columns(feed);
    let found = query(client, FEED_SUBSCRIPTIONS, &[&app, &user]).await?;
    Ok(found
        .iter()
        .map(rows::subscription)
        .collect::<Result<_, _>>()?)
}

/// How many jobs are queued.
pub(crate) async fn pending_jobs(client: &impl GenericClient) -> Result<u64, TxError> {
    let found = query(client, "SELECT count(*) FROM notif_jobs", &[]).await?;
    Ok(found
        .first()
        .map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
        .unwrap_or_default())
}

/// When the earliest job is due.
pub(crate) async fn next_due(client: &impl GenericClient) -> Result<Option<Timestamp>, TxError> {
    let found = query(client, "SELECT min(due) FROM notif_jobs", &[]).await?;
    Ok(found
        .first()
        .and_then(|row| row.get::<_, Option<i64>>(0))
        .map(Timestamp::from_unix_millis))
}
