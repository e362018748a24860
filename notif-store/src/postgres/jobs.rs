//! The job and delivery-status rows, written and locked in batches: one statement per
//! batch, whatever its size.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use notif_core::delivery::DeliveryRecord;
use notif_core::fanout::DeliveryJob;
use uuid::Uuid;

use super::rows::{self, JobColumns};
use super::tx::{TxError, execute, query};
use crate::records::JobRecord;

/// Reads the jobs stored for `keys` and locks them until commit; returns them by key.
pub(crate) async fn lock_jobs(
    client: &impl GenericClient,
    keys: &[(Uuid, Uuid)],
) -> Result<HashMap<[u8; 32], JobRecord>, TxError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (notifications, subscriptions): (Vec<Uuid>, Vec<Uuid>) = keys.iter().copied().unzip();
    let found = query(
        client,
        "SELECT j.notification, j.subscription, j.record FROM notif_jobs j \
         JOIN unnest($1::uuid[], $2::uuid[]) AS k(notification, subscription) \
           ON j.notification = k.notification AND j.subscription = k.subscription \
         ORDER BY j.notification, j.subscription FOR UPDATE OF j",
        &[&notifications, &subscriptions],
    )
    .await?;
    found
        .iter()
        .map(|row| rows::job_record(row).map_err(TxError::from))
        .collect()
}

/// Writes `jobs`, inserting or overwriting each.
pub(crate) async fn put_jobs(
    client: &impl GenericClient,
    jobs: Vec<JobColumns>,
) -> Result<(), TxError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let columns = Columns::from(jobs);
    execute(
        client,
        "INSERT INTO notif_jobs (notification, subscription, due, record, app, usr, lease_owner) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bytea[], $5::text[], $6::text[], $7::text[]) \
         ON CONFLICT (notification, subscription) \
         DO UPDATE SET due = EXCLUDED.due, record = EXCLUDED.record, lease_owner = EXCLUDED.lease_owner",
        &[
            &columns.notifications,
            &columns.subscriptions,
            &columns.dues,
            &columns.records,
            &columns.apps,
            &columns.users,
            &columns.lease_owners,
        ],
    )
    .await?;
    Ok(())
}

/// Overwrites `jobs`, which exist and are locked by the caller's transaction: cheaper than
/// [`put_jobs`] for the queue's own rewrites (leases, retries, releases).
pub(crate) async fn update_jobs(
    client: &impl GenericClient,
    jobs: Vec<JobColumns>,
) -> Result<(), TxError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let columns = Columns::from(jobs);
    execute(
        client,
        "UPDATE notif_jobs j SET due = k.due, record = k.record, lease_owner = k.lease_owner \
         FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bytea[], $5::text[]) \
           AS k(notification, subscription, due, record, lease_owner) \
         WHERE j.notification = k.notification AND j.subscription = k.subscription",
        &[
            &columns.notifications,
            &columns.subscriptions,
            &columns.dues,
            &columns.records,
            &columns.lease_owners,
        ],
    )
    .await?;
    Ok(())
}

/// Overwrites the records of jobs that exist and are locked by the caller's transaction,
/// leaving their due time and lease as they are.
pub(crate) async fn update_records(
    client: &impl GenericClient,
    records: Vec<((Uuid, Uuid), Vec<u8>)>,
) -> Result<(), TxError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut notifications = Vec::with_capacity(records.len());
    let mut subscriptions = Vec::with_capacity(records.len());
    let mut bytes = Vec::with_capacity(records.len());
    for ((notification, subscription), record) in records {
        notifications.push(notification);
        subscriptions.push(subscription);
        bytes.push(record);
    }
    execute(
        client,
        "UPDATE notif_jobs j SET record = k.record \
         FROM unnest($1::uuid[], $2::uuid[], $3::bytea[]) AS k(notification, subscription, record) \
         WHERE j.notification = k.notification AND j.subscription = k.subscription",
        &[&notifications, &subscriptions, &bytes],
    )
    .await?;
    Ok(())
}

/// Job columns as the arrays a batch statement takes.
#[derive(Default)]
struct Columns {
    notifications: Vec<Uuid>,
    subscriptions: Vec<Uuid>,
    apps: Vec<String>,
    users: Vec<String>,
    dues: Vec<i64>,
    records: Vec<Vec<u8>>,
    lease_owners: Vec<Option<String>>,
}

impl From<Vec<JobColumns>> for Columns {
    fn from(jobs: Vec<JobColumns>) -> Self {
        let mut columns = Self::default();
        for job in jobs {
            columns.notifications.push(job.notification);
            columns.subscriptions.push(job.subscription);
            columns.apps.push(job.app);
            columns.users.push(job.user);
            columns.dues.push(job.due);
            columns.records.push(job.record);
            columns.lease_owners.push(job.lease_owner);
        }
        columns
    }
}

/// Removes the jobs of `keys`.
pub(crate) async fn delete_jobs(
    client: &impl GenericClient,
    keys: &[(Uuid, Uuid)],
) -> Result<(), TxError> {
    if keys.is_empty() {
        return Ok(());
    }
    let (notifications, subscriptions): (Vec<Uuid>, Vec<Uuid>) = keys.iter().copied().unzip();
    execute(
        client,
        "DELETE FROM notif_jobs j USING unnest($1::uuid[], $2::uuid[]) AS k(notification, subscription) \
         WHERE j.notification = k.notification AND j.subscription = k.subscription",
        &[&notifications, &subscriptions],
    )
    .await?;
    Ok(())
}

/// Writes delivery statuses, inserting or overwriting each.
pub(crate) async fn put_statuses(
    client: &impl GenericClient,
    statuses: &[DeliveryRecord],
) -> Result<(), TxError> {
    if statuses.is_empty() {
        return Ok(());
    }
    let mut notifications = Vec::with_capacity(statuses.len());
    let mut subscriptions = Vec::with_capacity(statuses.len());
    let mut records = Vec::with_capacity(statuses.len());
    for status in statuses {
        let (notification, subscription, record) = rows::status_columns(status);
        notifications.push(notification);
        subscriptions.push(subscription);
        records.push(record);
    }
    execute(
        client,
        "INSERT INTO notif_delivery_status (notification, subscription, record) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bytea[]) \
         ON CONFLICT (notification, subscription) DO UPDATE SET record = EXCLUDED.record",
        &[&notifications, &subscriptions, &records],
    )
    .await?;
    Ok(())
}

/// The key columns of `job`.
pub(crate) fn key(job: &DeliveryJob) -> (Uuid, Uuid) {
    (*job.notification.as_uuid(), *job.subscription.as_uuid())
}
