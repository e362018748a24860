//! The queries: listing, change replay, delivery status and lookups, each costing in
//! proportion to what it returns.

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};

use notif_core::delivery::DeliveryRecord;
use notif_core::fanout::DeliveryJob;
use notif_core::ids::NotificationId;
use notif_core::notification::{ChangeSeq, FeedKey, Notification};
use notif_core::ports::{ChangePage, ListPage, ListQuery, StoreError};
use notif_core::time::Timestamp;

use crate::engine::{Engine, Tree};
use crate::keys;
use crate::records::{self, JobRecord, NotificationRecord, StatusRecord};
use crate::tx::{Direct, Reader, scan_prefix};

/// A page of the feed, newest first: a forward scan of the feed's notifications (keyed by
/// inverted UUID v7, so newest first) after the page token, until the page is full or the
/// query's scan budget is spent.
pub(crate) fn list<E: Engine + ?Sized>(
    engine: &E,
    feed: &FeedKey,
    query: &ListQuery,
    now: Timestamp,
) -> Result<ListPage, StoreError> {
    let prefix = keys::feed_prefix(feed);
    let upper = keys::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
    let lower = match query.page_token {
        Some(token) => Bound::Excluded(keys::notification_key(feed, token)),
        None => Bound::Included(prefix),
    };
    let mut pager = Pager::new(query, now);
    let mut failure = None;
    engine.scan(
        Tree::Notifications,
        (lower, upper),
        false,
        &mut |key, value| match records::decode::<NotificationRecord>(key, value)
            .and_then(|record| record.into_domain(key))
        {
            Ok(notification) => pager.offer(notification),
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        },
    )?;
    if let Some(error) = failure {
        return Err(error);
    }
    let (notifications, next_page_token) = pager.finish();
    Ok(ListPage {
        notifications,
        next_page_token,
        unread_count: Direct(engine).feed_meta(feed)?.unread,
    })
}

/// Fills one page of a listing from the feed's notifications offered newest first, after
/// the page token: until the page is full or the query's scan budget is spent. Every store
/// pages through it, so pages end, and continue, the same everywhere.
#[derive(Debug)]
pub(crate) struct Pager<'q> {
    query: &'q ListQuery,
    now: Timestamp,
    notifications: Vec<Notification>,
    examined: usize,
    last_examined: Option<NotificationId>,
    continue_after: Option<NotificationId>,
}

impl<'q> Pager<'q> {
    /// An empty page of `query` at `now`.
    pub(crate) fn new(query: &'q ListQuery, now: Timestamp) -> Self {
        Self {
            query,
            now,
            notifications: Vec::new(),
            examined: 0,
            last_examined: None,
            continue_after: None,
        }
    }

    /// Offers the next notification; `Break` when the page is done.
    pub(crate) fn offer(&mut self, notification: Notification) -> ControlFlow<()> {
        // The page continues after the last notification returned, or — when the scan
        // budget ends the page first — after the last one examined.
        if self.examined == self.query.scan_budget.max(1) {
            self.continue_after = self.last_examined;
            return ControlFlow::Break(());
        }
        self.examined += 1;
        let matches = self.query.matches(&notification, self.now);
        if self.notifications.len() == self.query.page_size {
            if matches {
                // One more exists: the next page starts after this page's last.
                self.continue_after = self.notifications.last().map(|last| last.id);
                return ControlFlow::Break(());
            }
        } else if matches {
            self.last_examined = Some(notification.id);
            self.notifications.push(notification);
            return ControlFlow::Continue(());
        }
        self.last_examined = Some(notification.id);
        ControlFlow::Continue(())
    }

    /// The page and where the next one starts (`None` when the feed was scanned to its end).
    pub(crate) fn finish(self) -> (Vec<Notification>, Option<NotificationId>) {
        (self.notifications, self.continue_after)
    }
}

/// The changes after `cursor`: a forward scan of the feed's change log.
pub(crate) fn changes_since<E: Engine + ?Sized>(
    engine: &E,
    feed: &FeedKey,
    cursor: ChangeSeq,
    limit: usize,
    now: Timestamp,
) -> Result<ChangePage, StoreError> {
    let prefix = keys::feed_prefix(feed);
    let start = keys::change_key(feed, cursor.next());
    let end = keys::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
    let mut entries = Vec::new();
    engine.scan(
        Tree::Changes,
        (Bound::Included(start), end),
        false,
        &mut |key, value| {
            entries.push((key.to_vec(), value.to_vec()));
            if entries.len() > limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )?;
    let has_more = entries.len() > limit;
    entries.truncate(limit);
    let mut changes = Vec::with_capacity(entries.len());
    let mut next_cursor = cursor;
    for (key, value) in entries {
        let seq = keys::array_at::<8>(&key, prefix.len())
            .map(|bytes| ChangeSeq::new(u64::from_be_bytes(bytes)))
            .ok_or_else(|| records::corrupt(&key, "change key".into()))?;
        let id = keys::uuid_at(&value, 0)
            .map(NotificationId::from_uuid)
            .ok_or_else(|| records::corrupt(&key, "change entry".into()))?;
        // The cursor advances by the log entry read, not by the notification's own sequence
        // number: a notification changed again meanwhile reappears later in the log, so a
        // device following cursors never skips a change.
        next_cursor = seq;
        if let Some(notification) = Direct(engine)
            .notification(feed, id)?
            .filter(|notification| notification.expiration > now)
        {
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
pub(crate) fn get<E: Engine + ?Sized>(
    engine: &E,
    feed: &FeedKey,
    id: NotificationId,
    now: Timestamp,
) -> Result<Option<Notification>, StoreError> {
    Ok(Direct(engine)
        .notification(feed, id)?
        .filter(|notification| notification.expiration > now))
}

/// The delivery status of a notification at each endpoint (see [`with_pending`]).
pub(crate) fn delivery_status<E: Engine + ?Sized>(
    engine: &E,
    feed: &FeedKey,
    id: NotificationId,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let Some(notification) = Direct(engine).notification(feed, id)? else {
        return Ok(Vec::new());
    };
    let mut statuses = Vec::new();
    for (key, value) in scan_prefix(&Direct(engine), Tree::Status, id.as_bytes(), usize::MAX)? {
        statuses.push(records::decode::<StatusRecord>(&key, &value)?.into_domain(&key)?);
    }
    let jobs = scan_prefix(&Direct(engine), Tree::Jobs, id.as_bytes(), usize::MAX)?
        .into_iter()
        .filter_map(|(key, value)| {
            records::decode::<JobRecord>(&key, &value)
                .and_then(|record| record.into_domain(&key))
                .ok()
        })
        .map(|(_, job)| job);
    Ok(with_pending(&notification, statuses, jobs))
}

/// Each endpoint's delivery status, in subscription order: its status record, or — while an
/// endpoint has none, only the job a write queued for it — pending since the notification's
/// last change. A new notification's jobs are written without a status record, on every
/// store; an undecodable job says nothing of its endpoint (its lease drops it), so callers
/// pass only the jobs that decode.
pub(crate) fn with_pending(
    notification: &Notification,
    statuses: impl IntoIterator<Item = DeliveryRecord>,
    jobs: impl IntoIterator<Item = DeliveryJob>,
) -> Vec<DeliveryRecord> {
    let mut records: BTreeMap<_, _> = statuses
        .into_iter()
        .map(|record| (record.subscription, record))
        .collect();
    let changed_at = notification
        .last_modified_at
        .unwrap_or(notification.created_at);
    for job in jobs {
        records
            .entry(job.subscription)
            .or_insert_with(|| DeliveryRecord::pending(&job, changed_at));
    }
    records.into_values().collect()
}

/// How many entries `tree` holds.
pub(crate) fn count<E: Engine + ?Sized>(engine: &E, tree: Tree) -> Result<u64, StoreError> {
    let mut count = 0u64;
    engine.scan(
        tree,
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |_, _| {
            count += 1;
            ControlFlow::Continue(())
        },
    )?;
    Ok(count)
}

/// When the earliest job is due.
pub(crate) fn next_due<E: Engine + ?Sized>(engine: &E) -> Result<Option<Timestamp>, StoreError> {
    let mut first = None;
    engine.scan(
        Tree::Due,
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |key, _| {
            first = keys::array_at::<8>(key, 0).map(keys::time_from_bytes);
            ControlFlow::Break(())
        },
    )?;
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{MemoryEngine, WriteBatch};
    use notif_core::ids::{AppId, UserId};

    #[test]
    fn a_corrupt_record_is_named_and_the_rest_keeps_serving() {
        let engine = MemoryEngine::new();
        let alice = FeedKey {
            app: AppId::new("demo").unwrap(),
            user: UserId::new("alice").unwrap(),
        };
        let bob = FeedKey {
            user: UserId::new("bob").unwrap(),
            ..alice.clone()
        };
        let broken_id = NotificationId::from_parts(1, [1; 10]);
        let broken_key = keys::notification_key(&alice, broken_id);
        let mut batch = WriteBatch::new();
        batch.insert(
            (Tree::Notifications, broken_key.clone()),
            Some(vec![1, 0xff, 0xff]),
        );
        engine.commit(&batch).unwrap();

        let hex: String = broken_key.iter().map(|b| format!("{b:02x}")).collect();
        let now = Timestamp::from_unix_millis(0);
        match list(&engine, &alice, &ListQuery::default(), now) {
            Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, hex),
            other => panic!("expected a corrupt-record error, got {other:?}"),
        }
        assert!(matches!(
            get(&engine, &alice, broken_id, now),
            Err(StoreError::Corrupt { .. })
        ));
        let other_page = list(&engine, &bob, &ListQuery::default(), now).unwrap();
        assert!(other_page.notifications.is_empty());
    }
}
