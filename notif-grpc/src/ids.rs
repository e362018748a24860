//! `RandomIds`: UUID v7 ids for notifications and subscriptions from the operating system's
//! random source.

use std::sync::atomic::{AtomicU64, Ordering};

use notif_core::ids::{NotificationId, SubscriptionId};
use notif_core::ports::IdGenerator;
use notif_core::time::Timestamp;

/// Random UUID v7 ids from the operating system's generator.
#[derive(Debug, Default)]
pub(crate) struct RandomIds {
    /// Mixed into every id, so ids stay unique even if the generator fails.
    counter: AtomicU64,
}

impl RandomIds {
    fn random(&self) -> [u8; 10] {
        let mut random = [0u8; 10];
        let _ = aws_lc_rs::rand::fill(&mut random);
        let count = self.counter.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        for (byte, mix) in random.iter_mut().zip(count.iter().rev()) {
            *byte ^= mix;
        }
        random
    }
}

fn unix_millis(now: Timestamp) -> u64 {
    u64::try_from(now.unix_millis()).unwrap_or(0)
}

impl IdGenerator for RandomIds {
    fn notification_id(&self, now: Timestamp) -> NotificationId {
        NotificationId::from_parts(unix_millis(now), self.random())
    }

    fn subscription_id(&self, now: Timestamp) -> SubscriptionId {
        SubscriptionId::from_parts(unix_millis(now), self.random())
    }
}
