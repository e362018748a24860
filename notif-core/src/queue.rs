//! The delivery queue's rules, for every store: what a new job does to the one already
//! queued for the same (notification, endpoint), what settling a job does to a successor
//! waiting behind it, what leasing does to a job whose notification expired or whose
//! endpoint is gone, and how a write moves a feed's unread count. A store reads the state a
//! rule needs, calls it, and persists the result; the ordering guarantees live here once.

use crate::fanout::DeliveryJob;
use crate::notification::{ChangeSeq, Notification, ReadState, Status};
use crate::subscription::Subscription;
use crate::time::Timestamp;

/// What a store holds for a (notification, endpoint) when a new job for it is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// No job.
    Nothing,
    /// A job waiting for its due time: never sent, or waiting to be retried.
    Pending {
        /// Its change.
        change_seq: ChangeSeq,
    },
    /// A job leased as it was written and never taken by a dispatcher: never sent.
    HandedOver {
        /// Its change.
        change_seq: ChangeSeq,
    },
    /// A job a dispatcher leased until `lease_end`: its push may be on its way.
    InFlight {
        /// Its change.
        change_seq: ChangeSeq,
        /// When its lease ends.
        lease_end: Timestamp,
    },
    /// A job waiting, until `until`, behind an in-flight push of an older change.
    Waiting {
        /// Its change.
        change_seq: ChangeSeq,
        /// When the in-flight push's lease ends.
        until: Timestamp,
    },
}

impl Queued {
    fn change_seq(self) -> Option<ChangeSeq> {
        match self {
            Queued::Nothing => None,
            Queued::Pending { change_seq }
            | Queued::HandedOver { change_seq }
            | Queued::InFlight { change_seq, .. }
            | Queued::Waiting { change_seq, .. } => Some(change_seq),
        }
    }
}

/// What to do with a new job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueue {
    /// Store it in place of whatever is queued (a pending or handed-over job was never sent:
    /// it is superseded), due when it says.
    Replace,
    /// Store it in place of what is queued, but due only at `until` and marked waiting: an
    /// older change of the notification may be on its way to the endpoint, and a device
    /// must never receive an older change after a newer one.
    WaitBehind {
        /// When the in-flight push's lease ends (settling it releases the new job sooner).
        until: Timestamp,
    },
    /// Keep what is queued: it is this change or a newer one.
    Keep,
}

/// Decides what a new `job` does to what is `queued` for its (notification, endpoint) at `now`.
pub fn enqueue(queued: Queued, job: &DeliveryJob, now: Timestamp) -> Enqueue {
    if queued
        .change_seq()
        .is_some_and(|held| held >= job.change_seq)
    {
        return Enqueue::Keep;
    }
    match queued {
        Queued::InFlight { lease_end, .. } if lease_end > now => {
            Enqueue::WaitBehind { until: lease_end }
        }
        // The job it replaces waited behind an in-flight push: so does the new one.
        Queued::Waiting { until, .. } if until > now => Enqueue::WaitBehind { until },
        Queued::Nothing
        | Queued::Pending { .. }
        | Queued::HandedOver { .. }
        | Queued::InFlight { .. }
        | Queued::Waiting { .. } => Enqueue::Replace,
    }
}

/// Whether `job` is of a notification the write minted: none of `current` (the stored
/// versions the write addressed) is it. Such a job supersedes nothing and has no earlier
/// status, so a store reads nothing for it and writes it without a status (it reads as
/// pending until settled).
pub fn of_new_notification(current: &[Notification], job: &DeliveryJob) -> bool {
    !current.iter().any(|stored| stored.id == job.notification)
}

/// What a store holds for a settled job's (notification, endpoint) when its settlement
/// arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// No job (settled already, expired, or its endpoint removed).
    Nothing,
    /// The settled job itself, under the attempt's lease.
    Same,
    /// The same change under a newer lease: the attempt's lease lapsed and another
    /// dispatcher (another node) leased the job again. Its holder settles it.
    LeasedAgain,
    /// A newer change's job, waiting behind the settled one or not.
    Newer {
        /// Whether it waits for the settled job's push.
        waiting: bool,
    },
}

/// What settling does to what is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtSettle {
    /// Apply the settlement to the job (done, rescheduled, endpoint gone).
    Apply,
    /// A newer job waited for this push: it may go now. The settlement itself is stale.
    ReleaseSuccessor,
    /// Nothing to do for the job: the settlement is stale.
    Stale,
}

/// Decides what settling a job does, given what is `held` for its (notification, endpoint).
/// An endpoint-gone settlement removes the endpoint whatever is held; that is the store's.
pub fn at_settle(held: Held) -> AtSettle {
    match held {
        Held::Same => AtSettle::Apply,
        Held::Newer { waiting: true } => AtSettle::ReleaseSuccessor,
        Held::Newer { waiting: false } | Held::LeasedAgain | Held::Nothing => AtSettle::Stale,
    }
}

/// What leasing does to a due job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtLease {
    /// Lease it and send it.
    Lease,
    /// Its notification expired: drop it and record it expired.
    Expired,
    /// Its endpoint was removed or lapsed: drop it and record it failed.
    EndpointGone,
    /// Its notification no longer exists: drop it silently.
    Orphan,
}

/// Decides what leasing at `now` does to a job of `notification` to `subscription` (each as
/// the store found it, if at all).
pub fn at_lease(
    notification: Option<&Notification>,
    subscription: Option<&Subscription>,
    now: Timestamp,
) -> AtLease {
    match (notification, subscription) {
        (None, _) => AtLease::Orphan,
        (Some(notification), _) if notification.expiration <= now => AtLease::Expired,
        (Some(_), Some(subscription)) if subscription.is_live(now) => AtLease::Lease,
        (Some(_), _) => AtLease::EndpointGone,
    }
}

/// Whether a notification counts in its feed's unread count.
pub fn counts_as_unread(notification: &Notification) -> bool {
    notification.status == Status::Active && notification.read_state == ReadState::Unread
}

/// The feed's unread count after `written` replaces `previous` (its earlier version, if any).
pub fn unread_after(unread: u64, previous: Option<&Notification>, written: &Notification) -> u64 {
    let was_unread = previous.is_some_and(counts_as_unread);
    unread.saturating_sub(u64::from(was_unread)) + u64::from(counts_as_unread(written))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::fanout::ChangeKind;
    use crate::ids::{NotificationId, SubscriptionId};
    use crate::platform::Platform;

    const LEASE: Duration = Duration::from_secs(60);

    fn job(change_seq: u64, due: Timestamp) -> DeliveryJob {
        DeliveryJob {
            notification: NotificationId::from_parts(1, [1; 10]),
            subscription: SubscriptionId::from_parts(1, [2; 10]),
            platform: Platform::Android,
            change: ChangeKind::State,
            change_seq: ChangeSeq::new(change_seq),
            due,
            attempts: 0,
            expires_at: Timestamp::from_unix_millis(i64::MAX),
            fallback: crate::fallback::JobFallback::None,
        }
    }

    /// One endpoint and one notification, driven through the rules as a store would: the
    /// job held for the pair, and the pushes on their way (each settles before its lease ends,
    /// or is lost with it).
    #[derive(Debug, Default)]
    struct Endpoint {
        now: i64,
        last_seq: u64,
        /// The held job: its change, when it is due, and what it is doing.
        held: Option<(u64, Timestamp, Kind)>,
        on_the_wire: Vec<(u64, Timestamp)>,
        received: Vec<u64>,
        superseded: Vec<u64>,
        /// Successors a settlement left waiting although the push they waited for arrived.
        left_waiting: Vec<u64>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Pending,
        InFlight { lease_end: Timestamp },
        Waiting { until: Timestamp },
    }

    #[derive(Debug, Clone)]
    enum Step {
        Change,
        Lease,
        /// The n-th push on the wire arrives and is settled.
        Arrive(usize),
        Advance(u32),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Change),
            3 => Just(Step::Lease),
            3 => (0usize..4).prop_map(Step::Arrive),
            1 => (1u32..90).prop_map(Step::Advance),
        ]
    }

    impl Endpoint {
        fn now(&self) -> Timestamp {
            Timestamp::from_unix_millis(self.now * 1000)
        }

        fn queued(&self) -> Queued {
            match self.held {
                None => Queued::Nothing,
                Some((seq, _, Kind::Pending)) => Queued::Pending {
                    change_seq: ChangeSeq::new(seq),
                },
                Some((seq, _, Kind::InFlight { lease_end })) => Queued::InFlight {
                    change_seq: ChangeSeq::new(seq),
                    lease_end,
                },
                Some((seq, _, Kind::Waiting { until })) => Queued::Waiting {
                    change_seq: ChangeSeq::new(seq),
                    until,
                },
            }
        }

        fn apply(&mut self, step: &Step) {
            let now = self.now();
            match step {
                Step::Change => {
                    self.last_seq += 1;
                    let replaced = self.held.map(|(seq, _, _)| seq);
                    match enqueue(self.queued(), &job(self.last_seq, now), now) {
                        Enqueue::Replace => self.held = Some((self.last_seq, now, Kind::Pending)),
                        Enqueue::WaitBehind { until } => {
                            self.held = Some((self.last_seq, until, Kind::Waiting { until }));
                        }
                        Enqueue::Keep => return,
                    }
                    self.superseded.extend(replaced);
                }
                Step::Lease => {
                    // A lapsed lease or a waiting job whose wait ended is due again.
                    let due = match self.held {
                        Some((_, due, Kind::Pending)) => due <= now,
                        Some((_, _, Kind::InFlight { lease_end })) => lease_end <= now,
                        Some((_, _, Kind::Waiting { until })) => until <= now,
                        None => false,
                    };
                    if let Some((seq, _, _)) = self.held.filter(|_| due) {
                        let lease_end = now.saturating_add(LEASE);
                        self.held = Some((seq, lease_end, Kind::InFlight { lease_end }));
                        self.on_the_wire.push((seq, lease_end));
                    }
                }
                Step::Arrive(index) => {
                    // Pushes whose lease ended are lost with it (the job comes back).
                    self.on_the_wire.retain(|(_, lease_end)| *lease_end > now);
                    if self.on_the_wire.is_empty() {
                        return;
                    }
                    let (seq, _) = self.on_the_wire.remove(index % self.on_the_wire.len());
                    self.received.push(seq);
                    let held = match self.held {
                        None => Held::Nothing,
                        Some((held, _, _)) if held == seq => Held::Same,
                        Some((_, _, kind)) => Held::Newer {
                            waiting: matches!(kind, Kind::Waiting { .. }),
                        },
                    };
                    match at_settle(held) {
                        AtSettle::Apply => self.held = None,
                        AtSettle::ReleaseSuccessor => {
                            if let Some((held, _, _)) = self.held {
                                self.held = Some((held, now, Kind::Pending));
                            }
                        }
                        AtSettle::Stale => {}
                    }
                    if held == (Held::Newer { waiting: true })
                        && let Some((successor, due, _)) = self.held
                        && due > now
                    {
                        self.left_waiting.push(successor);
                    }
                }
                Step::Advance(seconds) => self.now += i64::from(*seconds),
            }
        }

        /// Lets time pass and pushes arrive until nothing is held.
        fn drain(&mut self) {
            for _ in 0..64 {
                if self.held.is_none() {
                    return;
                }
                self.apply(&Step::Lease);
                while !self.on_the_wire.is_empty() {
                    self.apply(&Step::Arrive(0));
                }
                self.apply(&Step::Advance(61));
            }
        }
    }

    proptest! {
        #[test]
        fn an_endpoint_never_receives_two_changes_of_one_notification_out_of_order(
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let mut endpoint = Endpoint::default();
            for step in &steps {
                endpoint.apply(step);
            }
            endpoint.drain();
            let received = &endpoint.received;
            prop_assert!(
                received.windows(2).all(|pair| pair[0] <= pair[1]),
                "received {:?}", received
            );
        }

        #[test]
        fn a_superseded_job_is_never_sent_after_its_successor(
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let mut endpoint = Endpoint::default();
            for step in &steps {
                endpoint.apply(step);
            }
            endpoint.drain();
            for superseded in &endpoint.superseded {
                let successor_at = endpoint.received.iter().position(|seq| seq > superseded);
                let late = successor_at.is_some_and(|at| endpoint.received[at..].contains(superseded));
                prop_assert!(!late, "{superseded} arrived after a newer change: {:?}", endpoint.received);
            }
        }

        #[test]
        fn settling_never_loses_a_waiting_successor(
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let mut endpoint = Endpoint::default();
            for step in &steps {
                endpoint.apply(step);
            }
            prop_assert!(endpoint.left_waiting.is_empty(), "left waiting: {:?}", endpoint.left_waiting);
            endpoint.drain();
            prop_assert!(endpoint.held.is_none(), "still held: {:?}", endpoint.held);
            if endpoint.last_seq > 0 {
                prop_assert_eq!(endpoint.received.last().copied(), Some(endpoint.last_seq));
            }
        }
    }

    #[test]
    fn a_change_behind_a_waiting_one_waits_too() {
        let now = Timestamp::from_unix_millis(1_000);
        let until = now.saturating_add(LEASE);
        assert_eq!(
            enqueue(
                Queued::Waiting {
                    change_seq: ChangeSeq::new(2),
                    until
                },
                &job(3, now),
                now
            ),
            Enqueue::WaitBehind { until }
        );
        assert_eq!(
            enqueue(
                Queued::HandedOver {
                    change_seq: ChangeSeq::new(2)
                },
                &job(3, now),
                now
            ),
            Enqueue::Replace
        );
        assert_eq!(
            enqueue(
                Queued::Pending {
                    change_seq: ChangeSeq::new(3)
                },
                &job(3, now),
                now
            ),
            Enqueue::Keep
        );
    }
}
