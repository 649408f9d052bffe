//! The behaviour every store adapter must show, written once.
//!
//! Each adapter crate expands [`conformance_tests!`] in its tests with a
//! factory giving a fresh, empty store, and so gets one `#[tokio::test]` per
//! case, named `<backend>::<case>` in the test output.

// This crate *is* test code: a failed expectation is how a case fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod sessions;
pub mod throttle;
pub mod throwaway;
pub mod users;

/// Expands to a module named `$backend` holding one test per conformance
/// case. `$factory` is an async expression giving `(store, guard)`: the guard
/// (a temp dir, a database that drops itself, `()`) lives as long as the test.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ident, $factory:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            $crate::conformance_tests!(@cases $factory;
                users::insert_then_find_by_id_returns_the_same_record,
                users::duplicate_username_in_any_case_conflicts_on_username,
                users::duplicate_email_in_any_case_conflicts_on_email,
                users::failed_insert_changes_nothing,
                users::lookup_by_username_ignores_case,
                users::lookup_by_email_ignores_case,
                users::unicode_emails_are_kept_and_found,
                users::unknown_user_is_none,
                users::concurrent_registrations_of_one_name_have_one_winner,
                users::set_password_hash_replaces_it,
                users::set_disabled_round_trips,
                users::changing_a_missing_user_is_not_found,
                users::delete_user_frees_its_names,
                users::ping_answers,
                users::list_users_pages_in_username_order,
                sessions::created_session_is_found_active_with_its_user,
                sessions::sessions_of_unknown_users_are_refused,
                sessions::expired_and_revoked_sessions_are_not_active,
                sessions::consuming_rotates_once_then_reports_reuse,
                sessions::unknown_expired_or_revoked_tokens_are_invalid,
                sessions::concurrent_refreshes_with_one_token_rotate_exactly_once,
                sessions::revoking_all_of_a_users_sessions_can_keep_one,
                sessions::purge_removes_ended_sessions_and_their_tokens,
                sessions::deleting_a_user_ends_their_sessions,
                throttle::throttle_state_round_trips_and_clears,
                throttle::concurrent_throttle_updates_lose_nothing,
                throttle::purge_forgets_only_stale_unlocked_throttle_state,
            );
        }
    };
    (@cases $factory:expr; $($module:ident :: $case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                #[allow(clippy::let_unit_value)]
                let (store, _guard) = $factory.await;
                $crate::$module::$case(&store).await;
            }
        )+
    };
}
