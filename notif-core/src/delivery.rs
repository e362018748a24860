//! Delivery outcomes, the retry policy, delivery status, and how an outcome settles a job.

use std::time::Duration;

use crate::fallback::JobFallback;
use crate::fanout::DeliveryJob;
use crate::ids::{NotificationId, SubscriptionId};
use crate::platform::Platform;
use crate::time::Timestamp;

/// How a provider answered one push, as classified by its adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Accepted by the provider.
    Delivered {
        /// Whether the alert text was shortened to fit the provider's size limit.
        text_shortened: bool,
    },
    /// Try again later: 5xx, timeouts, connection errors, throttling. `after` is the provider's
    /// `Retry-After` (or `X-WNS-CONTINUE-AFTER`) when it named one.
    Retry {
        /// The wait the provider asked for.
        after: Option<Duration>,
    },
    /// The provider token expired; the adapter refreshes it and retries once, so a dispatcher
    /// that still sees this retries later.
    RefreshCredentials,
    /// The endpoint no longer exists (APNs 410/BadDeviceToken, FCM UNREGISTERED, WNS 404/410,
    /// Web Push 404/410): the subscription is removed.
    EndpointGone,
    /// Refused for good (any other 4xx): never retried.
    Rejected {
        /// The provider's reason.
        reason: String,
    },
}

/// A fraction in `[0, 1]` drawn by the caller, so the policy stays deterministic under test.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Jitter(f64);

impl Jitter {
    /// Clamps `fraction` into `[0, 1]` (NaN becomes 0).
    pub fn new(fraction: f64) -> Self {
        if fraction.is_nan() {
            Self(0.0)
        } else {
            Self(fraction.clamp(0.0, 1.0))
        }
    }

    /// The fraction.
    pub fn fraction(self) -> f64 {
        self.0
    }
}

/// Exponential back-off with full jitter, capped, bounded by attempts and by expiration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay (default 1 s).
    pub initial_delay: Duration,
    /// The growth factor per attempt (default 2).
    pub multiplier: u32,
    /// The largest computed delay (default 5 min). A provider's `Retry-After` may ask for more.
    pub max_delay: Duration,
    /// Attempts before giving up (default 12).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_secs(1),
            multiplier: 2,
            max_delay: Duration::from_secs(5 * 60),
            max_attempts: 12,
        }
    }
}

/// Why a job is not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The next attempt would fall at or after the notification's expiration.
    Expired,
    /// Every allowed attempt was made.
    AttemptsExhausted,
}

/// When, if ever, to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this instant.
    At(Timestamp),
    /// Stop.
    GiveUp(GiveUp),
}

impl RetryPolicy {
    /// The back-off ceiling after `attempts_made` attempts: `initial × multiplier^(n-1)`, capped.
    pub fn ceiling(&self, attempts_made: u32) -> Duration {
        let exponent = attempts_made.saturating_sub(1).min(63);
        let factor = u64::from(self.multiplier.max(1)).saturating_pow(exponent);
        let millis = u64::try_from(self.initial_delay.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(factor);
        Duration::from_millis(millis).min(self.max_delay)
    }

    /// Decides the next attempt after `attempts_made` failed attempts at `now`.
    ///
    /// The delay is `jitter × ceiling` (full jitter), but never less than the provider's
    /// `retry_after`. It gives up when the attempts are used up or when the next attempt would
    /// not fall before `expires_at`.
    pub fn next_attempt(
        &self,
        attempts_made: u32,
        now: Timestamp,
        expires_at: Timestamp,
        retry_after: Option<Duration>,
        jitter: Jitter,
    ) -> RetryDecision {
        if attempts_made >= self.max_attempts {
            return RetryDecision::GiveUp(GiveUp::AttemptsExhausted);
        }
        let jittered = self.ceiling(attempts_made).mul_f64(jitter.fraction());
        let delay = retry_after.map_or(jittered, |asked| asked.max(jittered));
        let at = now.saturating_add(delay);
        if at >= expires_at {
            RetryDecision::GiveUp(GiveUp::Expired)
        } else {
            RetryDecision::At(at)
        }
    }
}

/// Where one push to one endpoint stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its first attempt.
    Pending,
    /// Accepted by the provider.
    Delivered {
        /// When.
        at: Timestamp,
        /// Whether the alert text was shortened to fit the provider's size limit (the feed
        /// keeps the whole text).
        text_shortened: bool,
    },
    /// Failed for now; another attempt is scheduled.
    Retrying {
        /// When.
        next_attempt: Timestamp,
    },
    /// Failed for good.
    Failed {
        /// Why.
        reason: String,
    },
    /// The provider said the endpoint is gone; the subscription was removed.
    EndpointGone,
    /// The notification expired before the push got through.
    Expired,
    /// The raw push of a fallback policy was delivered; its visual push follows at
    /// `fallback_at` unless the device fetches the notification first.
    AwaitingFetch {
        /// When the visual push is due.
        fallback_at: Timestamp,
    },
    /// The device fetched the notification: no fallback follows.
    Fetched {
        /// When.
        at: Timestamp,
    },
    /// The device did not fetch the notification in time: the fallback's visual push was
    /// accepted by the provider.
    FallbackDelivered {
        /// When.
        at: Timestamp,
        /// Whether the alert text was shortened to fit the provider's size limit.
        text_shortened: bool,
    },
}

/// The delivery status of one notification at one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The notification.
    pub notification: NotificationId,
    /// The endpoint.
    pub subscription: SubscriptionId,
    /// The endpoint's platform.
    pub platform: Platform,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the state last changed.
    pub updated_at: Timestamp,
}

impl DeliveryRecord {
    /// The record of a job just planned.
    pub fn pending(job: &DeliveryJob, now: Timestamp) -> Self {
        Self::of(job, DeliveryState::Pending, 0, now)
    }

    /// The status of `job` in `state` after `attempts` attempts, as of `now`.
    pub fn of(job: &DeliveryJob, state: DeliveryState, attempts: u32, now: Timestamp) -> Self {
        Self {
            notification: job.notification,
            subscription: job.subscription,
            platform: job.platform,
            state,
            attempts,
            updated_at: now,
        }
    }
}

/// What to do with a job after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Remove the job; record this final state.
    Done(DeliveryState),
    /// Keep the job, due again at `due`.
    Reschedule {
        /// The next attempt.
        due: Timestamp,
    },
    /// Remove the job and the subscription: the endpoint is gone.
    RemoveSubscription,
    /// The raw push of a fallback was delivered: keep the job as the fallback's visual
    /// push, due at `due`, unless the device fetches the notification first.
    Fallback {
        /// When the visual push is due.
        due: Timestamp,
    },
}

impl Settlement {
    /// The settlement as it applies to the job a store holds, whose fallback stage is
    /// `held`: when the device fetched the notification while its raw push was on its way
    /// (which disarmed the job), no visual push is scheduled — the push is simply delivered.
    pub fn given_held(self, held: JobFallback, now: Timestamp) -> Self {
        match self {
            Settlement::Fallback { .. } if !matches!(held, JobFallback::Armed { .. }) => {
                Settlement::Done(DeliveryState::Delivered {
                    at: now,
                    text_shortened: false,
                })
            }
            settlement => settlement,
        }
    }

    /// The job a store keeps for this settlement of `held`, its job as stored, after
    /// `attempts` attempts: the same job due again later, or — for a delivered raw push with
    /// a fallback — the fallback's visual push, not attempted yet. `None`: the job goes.
    pub fn kept_job(&self, held: &DeliveryJob, attempts: u32) -> Option<DeliveryJob> {
        match *self {
            Settlement::Reschedule { due } => Some(DeliveryJob {
                due,
                attempts,
                ..held.clone()
            }),
            Settlement::Fallback { due } => Some(DeliveryJob {
                due,
                attempts: 0,
                fallback: JobFallback::Visual,
                ..held.clone()
            }),
            Settlement::Done(_) | Settlement::RemoveSubscription => None,
        }
    }

    /// The delivery state a store records for this settlement.
    pub fn state(&self) -> DeliveryState {
        match self {
            Settlement::Done(state) => state.clone(),
            Settlement::Reschedule { due } => DeliveryState::Retrying { next_attempt: *due },
            Settlement::RemoveSubscription => DeliveryState::EndpointGone,
            Settlement::Fallback { due } => DeliveryState::AwaitingFetch { fallback_at: *due },
        }
    }
}

/// Settles a job after an attempt that ended in `outcome` at `now` (`job.attempts` counts
/// the attempts before this one).
pub fn settle(
    job: &DeliveryJob,
    outcome: &DeliveryOutcome,
    policy: &RetryPolicy,
    now: Timestamp,
    jitter: Jitter,
) -> Settlement {
    let attempts_made = job.attempts.saturating_add(1);
    let retry = |retry_after| match policy.next_attempt(
        attempts_made,
        now,
        job.expires_at,
        retry_after,
        jitter,
    ) {
        RetryDecision::At(due) => Settlement::Reschedule { due },
        RetryDecision::GiveUp(GiveUp::Expired) => Settlement::Done(DeliveryState::Expired),
        RetryDecision::GiveUp(GiveUp::AttemptsExhausted) => {
            Settlement::Done(DeliveryState::Failed {
                reason: format!("gave up after {attempts_made} attempts"),
            })
        }
    };
    match outcome {
        DeliveryOutcome::Delivered { text_shortened } => match job.fallback {
            // A visual push due only after the notification expired is never sent.
            JobFallback::Armed { after } if now.saturating_add(after) < job.expires_at => {
                Settlement::Fallback {
                    due: now.saturating_add(after),
                }
            }
            JobFallback::Visual => Settlement::Done(DeliveryState::FallbackDelivered {
                at: now,
                text_shortened: *text_shortened,
            }),
            JobFallback::Armed { .. } | JobFallback::None => {
                Settlement::Done(DeliveryState::Delivered {
                    at: now,
                    text_shortened: *text_shortened,
                })
            }
        },
        DeliveryOutcome::Retry { after } => retry(*after),
        DeliveryOutcome::RefreshCredentials => retry(None),
        DeliveryOutcome::EndpointGone => Settlement::RemoveSubscription,
        DeliveryOutcome::Rejected { reason } => Settlement::Done(DeliveryState::Failed {
            reason: reason.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::ChangeKind;
    use crate::notification::ChangeSeq;

    const NOW: Timestamp = Timestamp::from_unix_millis(1_000_000);

    fn job(attempts: u32, expires_in: Duration) -> DeliveryJob {
        DeliveryJob {
            notification: NotificationId::from_parts(1, [0; 10]),
            subscription: SubscriptionId::from_parts(1, [1; 10]),
            platform: Platform::Android,
            change: ChangeKind::Created,
            change_seq: ChangeSeq::new(1),
            due: NOW,
            attempts,
            expires_at: NOW.saturating_add(expires_in),
            fallback: JobFallback::None,
        }
    }

    #[test]
    fn ceiling_doubles_from_one_second_to_five_minutes() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.ceiling(1), Duration::from_secs(1));
        assert_eq!(policy.ceiling(2), Duration::from_secs(2));
        assert_eq!(policy.ceiling(5), Duration::from_secs(16));
        assert_eq!(policy.ceiling(9), Duration::from_secs(256));
        assert_eq!(policy.ceiling(10), Duration::from_secs(300));
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn retry_after_is_honoured() {
        let policy = RetryPolicy::default();
        let decision = policy.next_attempt(
            1,
            NOW,
            NOW.saturating_add(Duration::from_secs(3600)),
            Some(Duration::from_secs(120)),
            Jitter::new(0.5),
        );
        assert_eq!(
            decision,
            RetryDecision::At(NOW.saturating_add(Duration::from_secs(120)))
        );
    }

    #[test]
    fn gives_up_at_expiration_and_after_twelve_attempts() {
        let policy = RetryPolicy::default();
        let soon = NOW.saturating_add(Duration::from_millis(500));
        assert_eq!(
            policy.next_attempt(1, NOW, soon, None, Jitter::new(1.0)),
            RetryDecision::GiveUp(GiveUp::Expired)
        );
        let later = NOW.saturating_add(Duration::from_secs(86_400));
        assert_eq!(
            policy.next_attempt(12, NOW, later, None, Jitter::new(0.0)),
            RetryDecision::GiveUp(GiveUp::AttemptsExhausted)
        );
        assert!(matches!(
            policy.next_attempt(11, NOW, later, None, Jitter::new(0.0)),
            RetryDecision::At(_)
        ));
    }

    #[test]
    fn outcomes_settle_jobs() {
        let policy = RetryPolicy::default();
        let hour = Duration::from_secs(3600);
        let jitter = Jitter::new(1.0);
        assert_eq!(
            settle(
                &job(0, hour),
                &DeliveryOutcome::Delivered {
                    text_shortened: false
                },
                &policy,
                NOW,
                jitter
            ),
            Settlement::Done(DeliveryState::Delivered {
                at: NOW,
                text_shortened: false,
            })
        );
        assert_eq!(
            settle(
                &job(0, hour),
                &DeliveryOutcome::EndpointGone,
                &policy,
                NOW,
                jitter
            ),
            Settlement::RemoveSubscription
        );
        assert_eq!(
            settle(
                &job(0, hour),
                &DeliveryOutcome::Rejected {
                    reason: "BadTopic".into()
                },
                &policy,
                NOW,
                jitter
            ),
            Settlement::Done(DeliveryState::Failed {
                reason: "BadTopic".into()
            })
        );
        assert_eq!(
            settle(
                &job(0, hour),
                &DeliveryOutcome::Retry { after: None },
                &policy,
                NOW,
                jitter
            ),
            Settlement::Reschedule {
                due: NOW.saturating_add(Duration::from_secs(1))
            }
        );
        assert!(matches!(
            settle(
                &job(11, hour),
                &DeliveryOutcome::RefreshCredentials,
                &policy,
                NOW,
                jitter
            ),
            Settlement::Done(DeliveryState::Failed { .. })
        ));
        assert_eq!(
            settle(
                &job(3, Duration::from_secs(2)),
                &DeliveryOutcome::Retry { after: None },
                &policy,
                NOW,
                jitter
            ),
            Settlement::Done(DeliveryState::Expired)
        );
    }

    #[test]
    fn a_delivered_raw_push_arms_its_fallback_unless_it_would_follow_expiration() {
        let policy = RetryPolicy::default();
        let delivered = DeliveryOutcome::Delivered {
            text_shortened: false,
        };
        let minute = Duration::from_secs(60);
        let armed = |expires_in| DeliveryJob {
            fallback: JobFallback::Armed { after: minute },
            ..job(0, expires_in)
        };
        let fallback_at = NOW.saturating_add(minute);
        let hour = Duration::from_secs(3600);
        let settlement = settle(&armed(hour), &delivered, &policy, NOW, Jitter::new(0.5));
        assert_eq!(settlement, Settlement::Fallback { due: fallback_at });
        assert_eq!(
            settlement.state(),
            DeliveryState::AwaitingFetch { fallback_at }
        );
        // A fetch disarmed the job while the raw push was on its way: no fallback.
        assert_eq!(
            settlement.clone().given_held(JobFallback::None, NOW),
            Settlement::Done(DeliveryState::Delivered {
                at: NOW,
                text_shortened: false
            })
        );
        assert_eq!(
            settlement
                .clone()
                .given_held(JobFallback::Armed { after: minute }, NOW),
            settlement
        );
        assert_eq!(
            settle(&armed(minute), &delivered, &policy, NOW, Jitter::new(0.5)),
            Settlement::Done(DeliveryState::Delivered {
                at: NOW,
                text_shortened: false
            })
        );
        let visual = DeliveryJob {
            fallback: JobFallback::Visual,
            ..job(0, hour)
        };
        assert_eq!(
            settle(&visual, &delivered, &policy, NOW, Jitter::new(0.5)),
            Settlement::Done(DeliveryState::FallbackDelivered {
                at: NOW,
                text_shortened: false
            })
        );
    }

    #[test]
    fn jitter_is_clamped() {
        assert_eq!(Jitter::new(f64::NAN).fraction(), 0.0);
        assert_eq!(Jitter::new(7.0).fraction(), 1.0);
        assert_eq!(Jitter::new(-1.0).fraction(), 0.0);
    }
}
