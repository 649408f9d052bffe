//! The behaviour every store adapter must show, written once.
//!
//! Each adapter crate expands [`conformance_tests!`] in its tests with a
//! factory giving a fresh, empty store, and so gets one `#[tokio::test]` per
//! case, named `<backend>::<case>` in the test output.

// This crate *is* test code: a failed expectation is how a case fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod audit;
pub mod clients;
pub mod factors;
pub mod flows;
pub mod mail;
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
                users::user_pages_follow_byte_order_of_the_username_key,
                users::user_search_matches_a_prefix_of_username_or_email,
                users::listed_accounts_read_back_whole,
                users::user_pages_stay_stable_while_accounts_are_inserted,
                users::update_email_moves_the_address_or_conflicts,
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
                clients::inserted_clients_read_back_whole,
                clients::a_taken_client_id_conflicts,
                clients::updating_a_client_replaces_all_but_its_creation_time,
                clients::deleting_a_client_forgets_it,
                flows::pending_requests_read_back_until_they_expire,
                flows::a_code_is_redeemed_once_then_reported_used,
                flows::an_expired_code_is_invalid,
                flows::concurrent_redemptions_of_one_code_have_one_winner,
                flows::browser_sessions_slide_until_idle_or_absolute_expiry,
                flows::ending_a_browser_session_forgets_it,
                flows::browser_sessions_and_consent_need_a_user_and_go_with_it,
                flows::consent_is_kept_per_user_and_client_and_replaced,
                flows::withdrawn_consent_is_forgotten_and_ends_that_clients_sessions,
                flows::purging_flows_removes_only_what_expired,
                flows::signing_a_browser_out_ends_the_sessions_it_started,
                mail::a_registration_writes_the_user_its_link_and_its_message,
                mail::a_refused_registration_writes_no_link_and_no_message,
                mail::a_claim_holds_a_message_until_its_lease_ends,
                mail::concurrent_claims_never_share_a_message,
                mail::retried_mail_returns_when_due_and_sent_mail_never,
                mail::a_link_is_spent_once_with_its_change,
                mail::concurrent_spends_of_one_link_have_one_winner,
                mail::a_reset_ends_every_session_and_queues_its_notice,
                mail::an_email_change_switches_the_address_unless_it_was_taken,
                mail::replacing_a_password_keeps_one_session_and_queues_the_notice,
                mail::purging_mail_removes_finished_messages_and_spent_links,
                factors::factors_read_back_and_their_unique_rules_hold,
                factors::a_totp_step_is_accepted_once_and_only_forward,
                factors::concurrent_uses_of_one_totp_step_have_one_winner,
                factors::recovery_codes_are_spent_once_and_replaced_whole,
                factors::removing_the_last_factor_takes_the_recovery_codes,
                factors::resetting_factors_ends_every_session,
                factors::a_ceremony_is_read_until_taken_and_taken_once,
                factors::expired_ceremonies_are_neither_found_nor_taken_and_are_purged,
                factors::a_users_sessions_are_listed_newest_first_with_how_they_signed_in,
                factors::deleting_a_user_removes_their_factors,
                audit::audit_records_read_back_oldest_first_and_filter,
                audit::concurrent_appends_lose_no_record,
                audit::cursor_pages_stay_stable_while_records_are_appended,
                audit::retention_removes_only_older_records_and_deleting_a_user_none,
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

/// A case written but not listed in [`conformance_tests!`] would silently
/// run on no store: this test reads the case modules and the list and
/// fails when they differ.
#[cfg(test)]
mod every_case_is_listed {
    use std::collections::BTreeSet;

    const SOURCES: &[(&str, &str)] = &[
        ("audit", include_str!("audit.rs")),
        ("clients", include_str!("clients.rs")),
        ("factors", include_str!("factors.rs")),
        ("flows", include_str!("flows.rs")),
        ("mail", include_str!("mail.rs")),
        ("sessions", include_str!("sessions.rs")),
        ("throttle", include_str!("throttle.rs")),
        ("users", include_str!("users.rs")),
    ];

    /// `module::name` of every `pub async fn name<S: Store>(store: &S)`.
    fn written() -> BTreeSet<String> {
        SOURCES
            .iter()
            .flat_map(|(module, source)| {
                source.lines().filter_map(move |line| {
                    let rest = line.strip_prefix("pub async fn ")?;
                    let (name, signature) = rest.split_once('<')?;
                    signature
                        .starts_with("S: Store>(store: &S)")
                        .then(|| format!("{module}::{name}"))
                })
            })
            .collect()
    }

    /// The `module::case` entries of the macro's list.
    fn listed() -> BTreeSet<String> {
        let lib = include_str!("lib.rs");
        let list_start = lib.find("@cases $factory;").unwrap_or(0);
        let list_end = lib[list_start..]
            .find(");")
            .map_or(lib.len(), |i| list_start + i);
        lib[list_start..list_end]
            .lines()
            .filter_map(|line| line.trim().strip_suffix(','))
            .filter(|entry| entry.contains("::"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_macro_lists_every_case_and_nothing_else() {
        let written = written();
        assert!(written.len() > 20, "found the cases: {written:?}");
        let listed = listed();
        let unlisted: Vec<_> = written.difference(&listed).collect();
        let unwritten: Vec<_> = listed.difference(&written).collect();
        assert!(
            unlisted.is_empty() && unwritten.is_empty(),
            "add to conformance_tests!: {unlisted:?}; not a case: {unwritten:?}"
        );
    }

    #[test]
    fn every_case_module_is_read() {
        let lib = include_str!("lib.rs");
        for module in lib.lines().filter_map(|l| l.strip_prefix("pub mod ")) {
            let module = module.trim_end_matches(';');
            assert!(
                module == "throwaway" || SOURCES.iter().any(|(m, _)| *m == module),
                "add {module} to SOURCES"
            );
        }
    }
}
