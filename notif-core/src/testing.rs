//! Test doubles for the time and id ports: a fixed, advanceable clock and sequential ids.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::ids::{NotificationId, SubscriptionId};
use crate::ports::{Clock, IdGenerator};
use crate::time::Timestamp;

/// A clock that stands still until told to move.
#[derive(Debug)]
pub struct FixedClock {
    millis: AtomicI64,
}

impl FixedClock {
    /// A clock showing `now`.
    pub fn new(now: Timestamp) -> Self {
        Self {
            millis: AtomicI64::new(now.unix_millis()),
        }
    }

    /// Moves the clock forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }

    /// Sets the clock to `now`.
    pub fn set(&self, now: Timestamp) {
        self.millis.store(now.unix_millis(), Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// Ids numbered 1, 2, 3, … in their random bits, so they are unique, sort by creation time
/// and then by number, and are the same in every run.
#[derive(Debug, Default)]
pub struct SequentialIds {
    counter: AtomicU64,
}

impl SequentialIds {
    /// A generator starting at 1.
    pub fn new() -> Self {
        Self::default()
    }

    fn next_random(&self) -> [u8; 10] {
        let number = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let mut random = [0u8; 10];
        random[2..].copy_from_slice(&number.to_be_bytes());
        random
    }
}

fn unix_millis(now: Timestamp) -> u64 {
    u64::try_from(now.unix_millis()).unwrap_or(0)
}

impl IdGenerator for SequentialIds {
    fn notification_id(&self, now: Timestamp) -> NotificationId {
        NotificationId::from_parts(unix_millis(now), self.next_random())
    }

    fn subscription_id(&self, now: Timestamp) -> SubscriptionId {
        SubscriptionId::from_parts(unix_millis(now), self.next_random())
    }
}
