//! Rows to the domain and back: the record columns hold the sled store's versioned records,
//! decoded (and re-validated) by the same code; a corrupt one is named by its key.

use notif_core::delivery::DeliveryRecord;
use notif_core::fanout::DeliveryJob;
use notif_core::ids::{NotificationId, SubscriptionId};
use notif_core::notification::{FeedKey, Notification};
use notif_core::ports::StoreError;
use notif_core::subscription::Subscription;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::keys;
use crate::records::{self, JobRecord, NotificationRecord, StatusRecord, SubscriptionRecord};

/// A feed's key columns.
pub(crate) fn feed_columns(feed: &FeedKey) -> (&str, &str) {
    (feed.app.as_str(), feed.user.as_str())
}

/// The notification in a row of `feed` with columns `id` and `record`.
pub(crate) fn notification(row: &Row, feed: &FeedKey) -> Result<Notification, StoreError> {
    let id: Uuid = row.try_get("id").map_err(column)?;
    notification_in(feed, id, row.try_get("record").map_err(column)?)
}

/// The notification `id` of `feed` stored as `bytes`.
pub(crate) fn notification_in(
    feed: &FeedKey,
    id: Uuid,
    bytes: &[u8],
) -> Result<Notification, StoreError> {
    let key = keys::notification_key(feed, NotificationId::from_uuid(id));
    records::decode::<NotificationRecord>(&key, bytes)?.into_domain(&key)
}

/// The subscription in a row with columns `id` and `record`.
pub(crate) fn subscription(row: &Row) -> Result<Subscription, StoreError> {
    let id: Uuid = row.try_get("id").map_err(column)?;
    subscription_in(id, row.try_get("record").map_err(column)?)
}

/// The subscription `id` stored as `bytes`.
pub(crate) fn subscription_in(id: Uuid, bytes: &[u8]) -> Result<Subscription, StoreError> {
    let key = id.as_bytes();
    records::decode::<SubscriptionRecord>(key, bytes)?.into_domain(key)
}

/// An optional column: `None` when the row has no value in it (an outer join found nothing).
pub(crate) fn optional<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    name: &str,
) -> Result<Option<T>, StoreError> {
    row.try_get(name).map_err(column)
}

/// The job record in a row with columns `notification`, `subscription` and `record`, with
/// its key.
pub(crate) fn job_record(row: &Row) -> Result<([u8; 32], JobRecord), StoreError> {
    let key = job_key_of(row)?;
    let bytes: &[u8] = row.try_get("record").map_err(column)?;
    Ok((key, records::decode::<JobRecord>(&key, bytes)?))
}

/// The delivery status in a row with columns `notification`, `subscription` and `record`.
pub(crate) fn status(row: &Row) -> Result<DeliveryRecord, StoreError> {
    let key = job_key_of(row)?;
    let bytes: &[u8] = row.try_get("record").map_err(column)?;
    records::decode::<StatusRecord>(&key, bytes)?.into_domain(&key)
}

fn job_key_of(row: &Row) -> Result<[u8; 32], StoreError> {
    let notification: Uuid = row.try_get("notification").map_err(column)?;
    let subscription: Uuid = row.try_get("subscription").map_err(column)?;
    Ok(keys::job_key(
        NotificationId::from_uuid(notification),
        SubscriptionId::from_uuid(subscription),
    ))
}

/// The columns of a job: its key, its feed, when it is due, and its record.
pub(crate) struct JobColumns {
    pub(crate) notification: Uuid,
    pub(crate) subscription: Uuid,
    pub(crate) app: String,
    pub(crate) user: String,
    pub(crate) due: i64,
    pub(crate) record: Vec<u8>,
    /// The node holding the job's lease, while leased.
    pub(crate) lease_owner: Option<String>,
}

impl JobColumns {
    /// The row of `job` of `feed` stored as `record`.
    pub(crate) fn new(feed: &FeedKey, job: &DeliveryJob, record: &JobRecord) -> Self {
        Self {
            notification: *job.notification.as_uuid(),
            subscription: *job.subscription.as_uuid(),
            app: feed.app.as_str().to_owned(),
            user: feed.user.as_str().to_owned(),
            due: job.due.unix_millis(),
            record: records::encode(record),
            lease_owner: None,
        }
    }

    /// The row leased by `node`.
    pub(crate) fn leased_by(mut self, node: &str) -> Self {
        self.lease_owner = Some(node.to_owned());
        self
    }
}

/// The columns of a delivery status.
pub(crate) fn status_columns(record: &DeliveryRecord) -> (Uuid, Uuid, Vec<u8>) {
    (
        *record.notification.as_uuid(),
        *record.subscription.as_uuid(),
        records::encode(&StatusRecord::from(record)),
    )
}

/// A column that is missing or of the wrong type: the schema is not the one this binary
/// wrote.
fn column(error: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt {
        key: "row".into(),
        reason: format!("unexpected column: {error}"),
    }
}
