//! The delivery queue on the database: leasing with `FOR UPDATE SKIP LOCKED`, settling and
//! releasing by the rules of `notif_core::queue`.
//!
//! A lease is the job's due time moved to the lease's end, recorded in the job as its
//! lease: a dispatcher that dies leaves jobs that simply come due again. The lease's end is
//! also its token. A job is leased only once due (its previous lease, if any, ended), so each
//! lease of a job ends later than the one before: a settlement whose lease is not the one the
//! job holds comes from a dispatcher whose lease lapsed, and is stale.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use notif_core::delivery::{DeliveryRecord, DeliveryState, Settlement};
use notif_core::fallback::{self, AtFetch};
use notif_core::fanout::DeliveryJob;
use notif_core::ids::{NotificationId, SubscriptionId};
use notif_core::notification::FeedKey;
use notif_core::ports::LeasedJob;
use notif_core::queue::{self, AtLease, AtSettle, Held};
use notif_core::time::Timestamp;
use uuid::Uuid;

use super::jobs::{self, delete_jobs, lock_jobs, put_statuses, update_jobs, update_records};
use super::rows::{self, JobColumns};
use super::tx::{TxError, execute, query};
use crate::records::{JobRecord, encode};

/// Leases up to `limit` due jobs — skipping those another transaction holds — dropping the
/// ones whose notification expired or whose endpoint is gone.
pub(crate) async fn lease_due(
    client: &impl GenericClient,
    node: &str,
    now: Timestamp,
    limit: usize,
    lease: Duration,
) -> Result<Vec<LeasedJob>, TxError> {
    // One statement: the due jobs, locked, with their notifications and endpoints (when
    // they still exist).
    let due = query(
        client,
        "WITH due AS ( \
           SELECT notification, subscription, app, usr, record FROM notif_jobs \
           WHERE due <= $1 ORDER BY due LIMIT $2 FOR UPDATE SKIP LOCKED) \
         SELECT d.notification, d.subscription, d.record, \
                n.record AS notification_record, s.record AS subscription_record \
         FROM due d \
         LEFT JOIN notif_notifications n \
           ON n.app = d.app AND n.usr = d.usr AND n.id = d.notification \
         LEFT JOIN notif_subscriptions s ON s.id = d.subscription",
        &[
            &now.unix_millis(),
            &i64::try_from(limit).unwrap_or(i64::MAX),
        ],
    )
    .await?;
    let mut leased = Vec::with_capacity(due.len());
    let mut rewritten = Vec::with_capacity(due.len());
    let mut dropped = Vec::new();
    let mut statuses = Vec::new();
    for row in &due {
        let (key, record) = rows::job_record(row)?;
        let Ok((feed, job)) = record.into_domain(&key) else {
            // An undecodable job can never be sent: drop it so the queue keeps moving.
            dropped.push(key_columns(&key));
            continue;
        };
        let notification = rows::optional::<&[u8]>(row, "notification_record")?
            .map(|bytes| rows::notification_in(&feed, *job.notification.as_uuid(), bytes))
            .transpose()?;
        let subscription = rows::optional::<&[u8]>(row, "subscription_record")?
            .map(|bytes| rows::subscription_in(*job.subscription.as_uuid(), bytes))
            .transpose()?;
        match queue::at_lease(notification.as_ref(), subscription.as_ref(), now) {
            AtLease::Lease => {
                let (Some(notification), Some(subscription)) = (notification, subscription) else {
                    continue;
                };
                let leased_job = DeliveryJob {
                    due: now.saturating_add(lease),
                    ..job
                };
                let record = JobRecord::new(&leased_job, &feed).leased_until(leased_job.due);
                rewritten.push(JobColumns::new(&feed, &leased_job, &record).leased_by(node));
                leased.push(LeasedJob {
                    job: leased_job,
                    notification,
                    subscription,
                });
            }
            AtLease::Expired => {
                dropped.push(jobs::key(&job));
                statuses.push(DeliveryRecord::of(
                    &job,
                    DeliveryState::Expired,
                    job.attempts,
                    now,
                ));
            }
            AtLease::EndpointGone => {
                dropped.push(jobs::key(&job));
                let reason = "the subscription was removed or lapsed".to_owned();
                statuses.push(DeliveryRecord::of(
                    &job,
                    DeliveryState::Failed { reason },
                    job.attempts,
                    now,
                ));
            }
            AtLease::Orphan => dropped.push(jobs::key(&job)),
        }
    }
    futures_util::try_join!(
        update_jobs(client, rewritten),
        delete_jobs(client, &dropped),
        put_statuses(client, &statuses),
    )?;
    Ok(leased)
}

fn key_columns(key: &[u8; 32]) -> (Uuid, Uuid) {
    let mut notification = [0; 16];
    let mut subscription = [0; 16];
    notification.copy_from_slice(&key[..16]);
    subscription.copy_from_slice(&key[16..]);
    (
        Uuid::from_bytes(notification),
        Uuid::from_bytes(subscription),
    )
}

/// What is held for a settled job's key, as the rules see it.
fn held(stored: Option<&JobRecord>, settled: &DeliveryJob) -> Held {
    match stored {
        None => Held::Nothing,
        Some(stored) if stored.change_seq() != settled.change_seq => Held::Newer {
            waiting: stored.waits_for_in_flight(),
        },
        Some(stored) if stored.is_lease_of(settled) => Held::Same,
        Some(_) => Held::LeasedAgain,
    }
}

/// The writes a batch of settlements adds up to, per job key: its row rewritten, or removed.
#[derive(Default)]
struct Outcome {
    jobs: HashMap<(Uuid, Uuid), Option<JobColumns>>,
    statuses: Vec<DeliveryRecord>,
    removed_subscriptions: Vec<Uuid>,
}

impl Outcome {
    fn requeue(&mut self, feed: &FeedKey, job: DeliveryJob) {
        let record = JobRecord::new(&job, feed);
        self.jobs
            .insert(jobs::key(&job), Some(JobColumns::new(feed, &job, &record)));
    }

    fn remove(&mut self, job: &DeliveryJob) {
        self.jobs.insert(jobs::key(job), None);
    }

    async fn write(self, client: &impl GenericClient) -> Result<(), TxError> {
        let mut rewritten = Vec::new();
        let mut removed = Vec::new();
        for (key, row) in self.jobs {
            match row {
                Some(columns) => rewritten.push(columns),
                None => removed.push(key),
            }
        }
        let subscriptions = async {
            if !self.removed_subscriptions.is_empty() {
                execute(
                    client,
                    "DELETE FROM notif_subscriptions WHERE id = ANY($1)",
                    &[&self.removed_subscriptions],
                )
                .await?;
            }
            Ok::<_, TxError>(())
        };
        futures_util::try_join!(
            update_jobs(client, rewritten),
            delete_jobs(client, &removed),
            put_statuses(client, &self.statuses),
            subscriptions,
        )?;
        Ok(())
    }
}

/// Applies the settlements of attempts.
pub(crate) async fn settle(
    client: &impl GenericClient,
    settlements: &[(DeliveryJob, Settlement)],
    now: Timestamp,
) -> Result<(), TxError> {
    let keys: Vec<_> = settlements.iter().map(|(job, _)| jobs::key(job)).collect();
    let mut stored: HashMap<(Uuid, Uuid), JobRecord> = lock_jobs(client, &keys)
        .await?
        .into_iter()
        .map(|(key, record)| (key_columns(&key), record))
        .collect();
    let mut outcome = Outcome::default();
    for (job, settlement) in settlements {
        let key = jobs::key(job);
        let current = stored.get(&key);
        let rule = queue::at_settle(held(current, job));
        let current = match (rule, current) {
            (AtSettle::Apply, Some(current)) => Some(decode(&key, current)?),
            (AtSettle::ReleaseSuccessor, Some(newer)) => {
                // A newer change superseded the job while it was in flight and waited for
                // it: it may go now.
                let (feed, newer) = decode(&key, newer)?;
                let released = DeliveryJob { due: now, ..newer };
                stored.insert(key, JobRecord::new(&released, &feed));
                outcome.requeue(&feed, released);
                None
            }
            _ => None,
        };
        let attempts = job.attempts.saturating_add(1);
        let settlement = match &current {
            Some((_, held)) => settlement.clone().given_held(held.fallback, now),
            None => settlement.clone(),
        };
        match &settlement {
            Settlement::RemoveSubscription => {
                outcome
                    .removed_subscriptions
                    .push(*job.subscription.as_uuid());
                if stored.remove(&key).is_some() {
                    outcome.remove(job);
                }
                outcome.statuses.push(DeliveryRecord::of(
                    job,
                    DeliveryState::EndpointGone,
                    attempts,
                    now,
                ));
            }
            Settlement::Done(state) => {
                if let Some((_, current)) = current {
                    stored.remove(&key);
                    outcome.remove(&current);
                    outcome
                        .statuses
                        .push(DeliveryRecord::of(job, state.clone(), attempts, now));
                }
            }
            Settlement::Reschedule { .. } | Settlement::Fallback { .. } => {
                if let Some((feed, current)) = current
                    && let Some(kept) = settlement.kept_job(&current, attempts)
                {
                    stored.insert(key, JobRecord::new(&kept, &feed));
                    outcome.requeue(&feed, kept);
                    outcome.statuses.push(DeliveryRecord::of(
                        job,
                        settlement.state(),
                        attempts,
                        now,
                    ));
                }
            }
        }
    }
    outcome.write(client).await
}

/// Stops the fallbacks of `notifications` (of `feed`) to `subscription`, whose device
/// fetched them at `now`, as [`fallback::at_fetch`] decides; returns how many were stopped.
pub(crate) async fn record_fetch(
    client: &impl GenericClient,
    feed: &FeedKey,
    subscription: SubscriptionId,
    notifications: &[NotificationId],
    now: Timestamp,
) -> Result<usize, TxError> {
    let keys: Vec<_> = notifications
        .iter()
        .map(|notification| (*notification.as_uuid(), *subscription.as_uuid()))
        .collect();
    let mut disarmed = Vec::new();
    let mut cancelled = Vec::new();
    let mut statuses = Vec::new();
    for (key, record) in lock_jobs(client, &keys).await? {
        // An undecodable job is left as it is: the read that noted the fetch still answers.
        let Ok((job_feed, held)) = record.clone().into_domain(&key) else {
            continue;
        };
        if &job_feed != feed {
            continue;
        }
        match fallback::at_fetch(held.fallback) {
            AtFetch::Disarm => disarmed.push((jobs::key(&held), encode(&record.disarmed()))),
            AtFetch::Cancel => cancelled.push(jobs::key(&held)),
            AtFetch::Nothing => continue,
        }
        statuses.push(DeliveryRecord::of(
            &held,
            DeliveryState::Fetched { at: now },
            held.attempts,
            now,
        ));
    }
    futures_util::try_join!(
        update_records(client, disarmed),
        delete_jobs(client, &cancelled),
        put_statuses(client, &statuses),
    )?;
    Ok(statuses.len())
}

/// Gives back leased jobs that were not sent: each due again at `due`, unless it changed
/// since (settled, superseded, leased again).
pub(crate) async fn release(
    client: &impl GenericClient,
    leased: &[DeliveryJob],
    due: Timestamp,
) -> Result<(), TxError> {
    let keys: Vec<_> = leased.iter().map(jobs::key).collect();
    let stored = lock_jobs(client, &keys).await?;
    let mut outcome = Outcome::default();
    for job in leased {
        let key = crate::keys::job_key(job.notification, job.subscription);
        let Some(record) = stored.get(&key) else {
            continue;
        };
        if !record.is_lease_of(job) {
            continue;
        }
        // An undecodable job is left to the lease's lapse like any other.
        let Ok((feed, current)) = record.clone().into_domain(&key) else {
            continue;
        };
        outcome.requeue(&feed, DeliveryJob { due, ..current });
    }
    outcome.write(client).await
}

fn decode(key: &(Uuid, Uuid), record: &JobRecord) -> Result<(FeedKey, DeliveryJob), TxError> {
    let key = crate::keys::job_key(
        notif_core::ids::NotificationId::from_uuid(key.0),
        notif_core::ids::SubscriptionId::from_uuid(key.1),
    );
    Ok(record.clone().into_domain(&key)?)
}

/// Gives back, due at `now`, every job `node` holds a lease on: at its orderly shutdown,
/// after its dispatcher finished what it was sending, these were never sent. Returns how
/// many.
pub(crate) async fn release_node(
    client: &impl GenericClient,
    node: &str,
    now: Timestamp,
) -> Result<usize, TxError> {
    let held = query(
        client,
        "SELECT notification, subscription, record FROM notif_jobs WHERE lease_owner = $1 \
         ORDER BY notification, subscription FOR UPDATE",
        &[&node],
    )
    .await?;
    let mut outcome = Outcome::default();
    for row in &held {
        let (key, record) = rows::job_record(row)?;
        // An undecodable job is left to the lease's lapse like any other.
        if let Ok((feed, job)) = record.into_domain(&key) {
            outcome.requeue(&feed, DeliveryJob { due: now, ..job });
        }
    }
    let released = outcome.jobs.len();
    outcome.write(client).await?;
    Ok(released)
}
