//! [`DatabaseClock`]: the database's clock, read on this node.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;
use notif_core::ports::{Clock, StoreError};
use notif_core::time::Timestamp;

use super::tx::{TxError, query};

/// The database's clock: this node's clock corrected by the offset between the two,
/// measured (halfway through a round trip) when the store opens and at every health probe.
/// Nodes whose own clocks disagree still agree on when a lease ends or a job is due, to
/// within a round trip.
#[derive(Debug, Default)]
pub struct DatabaseClock {
    offset_millis: AtomicI64,
}

impl DatabaseClock {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Measures the offset again.
    pub(crate) async fn synchronise(&self, pool: &Pool) -> Result<(), StoreError> {
        let client = pool
            .get()
            .await
            .map_err(|error| StoreError::Unavailable(format!("database: {error}")))?;
        let sent = Instant::now();
        let local_before = local_millis();
        let rows = query(
            &client,
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            &[],
        )
        .await
        .map_err(StoreError::from)?;
        let round_trip = i64::try_from(sent.elapsed().as_millis()).unwrap_or(i64::MAX);
        let database: i64 = rows.first().map(|row| row.get(0)).ok_or_else(|| {
            StoreError::from(TxError::Store(StoreError::Unavailable(
                "the database did not tell its time".into(),
            )))
        })?;
        let offset = database - (local_before + round_trip / 2);
        self.offset_millis.store(offset, Ordering::Relaxed);
        Ok(())
    }
}

fn local_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl Clock for DatabaseClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(local_millis() + self.offset_millis.load(Ordering::Relaxed))
    }
}
