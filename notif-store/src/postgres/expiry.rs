//! The expiry sweep, safe on every node at once: bounded batches, and rows another
//! transaction holds are skipped (a later sweep takes them).

use deadpool_postgres::GenericClient;
use notif_core::notification::FeedKey;
use notif_core::queue;
use notif_core::time::Timestamp;
use uuid::Uuid;

use super::rows;
use super::tx::{TxError, execute, query};

/// Removes up to `limit` expired notifications and up to `limit` lapsed subscriptions.
pub(crate) async fn expire(
    client: &impl GenericClient,
    now: Timestamp,
    limit: usize,
) -> Result<usize, TxError> {
    let now_millis = now.unix_millis();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // The feeds first, as every feed writer locks them: feeds being written now are skipped.
    let feeds = query(
        client,
        "SELECT f.app, f.usr FROM notif_feeds f \
         JOIN (SELECT DISTINCT app, usr FROM \
                 (SELECT app, usr FROM notif_notifications WHERE expiration <= $1 \
                  ORDER BY expiration LIMIT $2) AS expired) AS e \
           ON f.app = e.app AND f.usr = e.usr \
         FOR UPDATE OF f SKIP LOCKED",
        &[&now_millis, &limit],
    )
    .await?;
    let mut removed = 0;
    for row in &feeds {
        let app: &str = row.get(0);
        let user: &str = row.get(1);
        removed += expire_in_feed(client, app, user, now_millis, limit).await?;
    }
    let subscriptions = execute(
        client,
        "DELETE FROM notif_subscriptions WHERE id IN \
           (SELECT id FROM notif_subscriptions WHERE expires_at <= $1 \
            ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[&now_millis, &limit],
    )
    .await?;
    let grants = super::identity::expire_grants(client, now, limit).await?;
    Ok(removed + usize::try_from(subscriptions).unwrap_or(usize::MAX) + grants)
}

/// Removes the expired notifications of one locked feed, with their `appNotificationId`
/// entries, jobs and statuses, and takes the unread ones off its count.
async fn expire_in_feed(
    client: &impl GenericClient,
    app: &str,
    user: &str,
    now_millis: i64,
    limit: i64,
) -> Result<usize, TxError> {
    let expired = query(
        client,
        "DELETE FROM notif_notifications WHERE (app, usr, id) IN \
           (SELECT app, usr, id FROM notif_notifications \
            WHERE app = $1 AND usr = $2 AND expiration <= $3 ORDER BY expiration LIMIT $4) \
         RETURNING id, record",
        &[&app, &user, &now_millis, &limit],
    )
    .await?;
    if expired.is_empty() {
        return Ok(0);
    }
    let feed = FeedKey {
        app: notif_core::ids::AppId::new(app).map_err(corrupt)?,
        user: notif_core::ids::UserId::new(user).map_err(corrupt)?,
    };
    let mut ids: Vec<Uuid> = Vec::with_capacity(expired.len());
    let mut unread: i64 = 0;
    for row in &expired {
        ids.push(row.get("id"));
        // An undecodable record cannot say whether it was unread; it leaves all the same.
        if rows::notification(row, &feed)
            .is_ok_and(|notification| queue::counts_as_unread(&notification))
        {
            unread += 1;
        }
    }
    futures_util::try_join!(
        async {
            execute(
                client,
                "DELETE FROM notif_app_ids WHERE app = $1 AND usr = $2 AND id = ANY($3)",
                &[&app, &user, &ids],
            )
            .await
        },
        async {
            execute(
                client,
                "DELETE FROM notif_jobs WHERE notification = ANY($1)",
                &[&ids],
            )
            .await
        },
        async {
            execute(
                client,
                "DELETE FROM notif_delivery_status WHERE notification = ANY($1)",
                &[&ids],
            )
            .await
        },
        async {
            execute(
            client,
            "UPDATE notif_feeds SET unread = GREATEST(unread - $3, 0) WHERE app = $1 AND usr = $2",
            &[&app, &user, &unread],
        ).await
        },
    )?;
    Ok(expired.len())
}

fn corrupt(error: impl std::fmt::Display) -> TxError {
    TxError::Store(notif_core::ports::StoreError::Corrupt {
        key: "feed".into(),
        reason: error.to_string(),
    })
}
