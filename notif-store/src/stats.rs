//! Write figures for metrics, kept the same way by every store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many writes were made and how long they took, queueing and commit included.
#[derive(Debug, Default)]
pub(crate) struct WriteStats {
    count: AtomicU64,
    nanos: AtomicU64,
}

impl WriteStats {
    /// Counts one write that took `elapsed`.
    pub(crate) fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Writes so far and their total latency.
    pub(crate) fn totals(&self) -> (u64, Duration) {
        (
            self.count.load(Ordering::Relaxed),
            Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
        )
    }
}
