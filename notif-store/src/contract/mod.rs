//! The storage contract, exported: every rule the storage ports must keep, as test cases any
//! implementation runs — the memory and sled stores here, a PostgreSQL store, an embedder's
//! own. Feature `contract`.
//!
//! Implement [`StoreFactory`] for the store, then generate the whole suite as tests:
//!
//! ```ignore
//! struct MyFactory;
//! impl notif_store::contract::StoreFactory for MyFactory { /* fresh, reopen */ }
//!
//! mod my_store {
//!     notif_store::contract_suite!(crate::MyFactory);
//! }
//! ```
//!
//! Cases run through the notif-core use cases over the store (`cases`), plus the model-based
//! property test (`model`): random operation sequences, with reopens, against a reference
//! model.

// A test suite: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod cases;
pub mod fixtures;
mod model;
#[cfg(feature = "postgres")]
pub mod postgres;

use std::future::Future;
use std::sync::Arc;

use notif_core::ports::{
    DeliveryQueue, IdentityStore, NotificationStore, StoreAdmin, SubscriptionStore,
};

pub use cases::*;
pub use fixtures::Harness;
pub use model::{
    jobs_in_the_hand_off_are_superseded_and_recalled,
    jobs_waiting_for_the_dispatcher_are_not_sent_after_an_unsubscribe,
    jobs_waiting_for_the_dispatcher_at_close_are_due_after_reopen, the_store_agrees_with_the_model,
};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresFactory, TestPostgres};

/// Every storage port in one object: what a store under the contract implements.
pub trait StorePorts:
    NotificationStore + SubscriptionStore + DeliveryQueue + StoreAdmin + IdentityStore
{
}

impl<T> StorePorts for T where
    T: NotificationStore + SubscriptionStore + DeliveryQueue + StoreAdmin + IdentityStore
{
}

/// Makes the stores the suite runs on.
pub trait StoreFactory: Send + Sync {
    /// A new, empty store.
    fn fresh(&self) -> Arc<dyn StorePorts>;

    /// The same store opened again after `closed` was closed (its last handle, given back):
    /// what survives a restart. A store that keeps nothing across one returns it as it is.
    fn reopen(&self, closed: Arc<dyn StorePorts>) -> Arc<dyn StorePorts>;
}

/// The in-memory store; it has nothing to reopen.
#[derive(Debug, Default)]
pub struct MemoryFactory;

impl StoreFactory for MemoryFactory {
    fn fresh(&self) -> Arc<dyn StorePorts> {
        Arc::new(crate::MemoryStore::new())
    }

    fn reopen(&self, closed: Arc<dyn StorePorts>) -> Arc<dyn StorePorts> {
        closed
    }
}

/// The sled store, each fresh one in a temporary directory of its own; a reopen opens the
/// directory of the latest.
#[derive(Debug, Default)]
pub struct SledFactory {
    directories: std::sync::Mutex<Vec<tempfile::TempDir>>,
}

impl SledFactory {
    /// A factory; its directories go when it does.
    pub fn new() -> Self {
        Self::default()
    }

    fn open_latest(&self) -> Arc<dyn StorePorts> {
        let directories = self
            .directories
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let directory = directories.last().expect("a fresh store was made first");
        Arc::new(crate::SledStore::open(directory.path()).unwrap())
    }
}

impl StoreFactory for SledFactory {
    fn fresh(&self) -> Arc<dyn StorePorts> {
        self.directories
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(tempfile::tempdir().expect("a temporary directory"));
        self.open_latest()
    }

    fn reopen(&self, closed: Arc<dyn StorePorts>) -> Arc<dyn StorePorts> {
        // The last handle goes: the directory is free, as for the next process.
        drop(closed);
        self.open_latest()
    }
}

/// Runs a case on a multi-threaded runtime of two workers, as the server runs.
pub fn run(case: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(case);
}

/// Generates every contract case as a `#[test]` against the stores `$factory` (an expression
/// evaluated afresh for each test) makes.
#[macro_export]
macro_rules! contract_suite {
    ($factory:expr) => {
        $crate::contract_suite!(@cases $factory;
            create_then_get_and_list,
            replacing_keeps_the_id_and_resets_state,
            create_after_delete_gets_a_new_id,
            jobs_are_written_with_the_create,
            state_changes_sync_to_devices_but_not_web_push,
            read_state_moves_the_unread_count,
            deletes_by_key_and_group_leave_tombstones,
            list_paginates_newest_first_with_filters,
            a_filtered_page_examines_at_most_its_scan_budget,
            change_replay_converges_to_the_listing,
            subscribing_again_renews,
            subscriptions_are_capped_and_removable,
            app_only_callers_name_the_user_by_subscription,
            other_users_and_apps_see_nothing,
            leases_hide_jobs_until_they_lapse,
            released_jobs_are_due_again_unchanged,
            jobs_written_while_a_dispatcher_leases_come_leased,
            jobs_left_past_their_lease_are_leased_once,
            jobs_beyond_the_hand_off_capacity_are_queued_due,
            due_jobs_are_leased_beside_handed_over_ones,
            jobs_written_due_are_leased_beside_handed_over_ones,
            settlements_update_jobs_and_status,
            a_fallback_follows_an_unfetched_raw_push,
            fallbacks_are_disarmed_superseded_and_expire,
            a_newer_change_supersedes_an_in_flight_job,
            expiry_removes_everything,
            jobs_of_expired_notifications_are_dropped,
            subscriptions_lapse,
            concurrent_writes_each_see_the_ones_before,
            signing_keys_are_kept_once_and_in_order,
            refresh_tokens_are_spent_once,
            latest_starts_after_the_last_change,
        );
        #[test]
        fn the_store_agrees_with_the_model() {
            $crate::contract::the_store_agrees_with_the_model(&$factory);
        }
        #[test]
        fn jobs_in_the_hand_off_are_superseded_and_recalled() {
            $crate::contract::jobs_in_the_hand_off_are_superseded_and_recalled(&$factory);
        }
        #[test]
        fn jobs_waiting_for_the_dispatcher_at_close_are_due_after_reopen() {
            $crate::contract::jobs_waiting_for_the_dispatcher_at_close_are_due_after_reopen(&$factory);
        }
        #[test]
        fn jobs_waiting_for_the_dispatcher_are_not_sent_after_an_unsubscribe() {
            $crate::contract::jobs_waiting_for_the_dispatcher_are_not_sent_after_an_unsubscribe(&$factory);
        }
    };
    (@cases $factory:expr; $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let factory = $factory;
                $crate::contract::run($crate::contract::$case($crate::contract::Harness::new(&factory)));
            }
        )*
    };
}
