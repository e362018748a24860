//! notif-store's integration tests: the port contract against both stores, the model-based
//! property suite with reopen, and the SIGKILL crash test.

// Test code unwraps: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod contract;
mod crash;
mod fixtures;
mod model;

macro_rules! contract_suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::contract::$name(crate::fixtures::Harness::memory()).await;
                }
            )*
        }
        mod sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::contract::$name(crate::fixtures::Harness::sled()).await;
                }
            )*
        }
    };
}

contract_suite!(
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
    jobs_written_while_a_dispatcher_leases_come_leased,
    jobs_left_past_their_lease_are_leased_once,
    jobs_beyond_the_hand_off_capacity_are_queued_due,
    due_jobs_are_leased_beside_handed_over_ones,
    jobs_written_due_are_leased_beside_handed_over_ones,
    settlements_update_jobs_and_status,
    a_newer_change_supersedes_an_in_flight_job,
    expiry_removes_everything,
    jobs_of_expired_notifications_are_dropped,
    subscriptions_lapse,
    concurrent_writes_each_see_the_ones_before,
);
