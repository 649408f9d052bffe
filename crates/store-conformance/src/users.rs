//! Accounts: uniqueness, case-insensitive lookup, atomicity under concurrency.

use std::sync::Arc;

use auth_core::store::{Store, StoreError, UniqueField};
use auth_core::{Email, NewUser, UserQuery, UserSummary, Username};
use uuid::Uuid;

/// A valid new user; the hash is opaque to stores, so any string will do.
pub fn new_user(username: &str, email: &str) -> NewUser {
    NewUser::new(
        Username::parse(username).expect("test username is valid"),
        Email::parse(email).expect("test email is valid"),
        format!("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$hash-of-{username}"),
    )
}

pub async fn insert_then_find_by_id_returns_the_same_record<S: Store>(store: &S) {
    let user = new_user("Alice", "Alice@Example.org");
    store.insert_user(&user).await.expect("insert");
    let found = store
        .find_user_by_id(user.id)
        .await
        .expect("find")
        .expect("user exists");
    assert_eq!(found, user.clone().into_user());
    assert_eq!(found.username, "Alice", "the registered case is kept");
    assert!(!found.disabled);
}

pub async fn duplicate_username_in_any_case_conflicts_on_username<S: Store>(store: &S) {
    store
        .insert_user(&new_user("alice", "one@x.org"))
        .await
        .expect("insert");
    for name in ["alice", "Alice", "ALICE", "aLiCe"] {
        let err = store
            .insert_user(&new_user(name, &format!("{name}-other@x.org")))
            .await
            .expect_err("duplicate username must conflict");
        assert!(
            matches!(err, StoreError::Conflict(UniqueField::Username)),
            "{name}: {err:?}"
        );
    }
}

pub async fn duplicate_email_in_any_case_conflicts_on_email<S: Store>(store: &S) {
    store
        .insert_user(&new_user("first", "a@x.org"))
        .await
        .expect("insert");
    for (i, email) in ["a@x.org", "A@X.org", "A@x.ORG"].iter().enumerate() {
        let err = store
            .insert_user(&new_user(&format!("second{i}"), email))
            .await
            .expect_err("duplicate email must conflict");
        assert!(
            matches!(err, StoreError::Conflict(UniqueField::Email)),
            "{email}: {err:?}"
        );
    }
}

pub async fn failed_insert_changes_nothing<S: Store>(store: &S) {
    store
        .insert_user(&new_user("taken", "taken@x.org"))
        .await
        .expect("insert");
    let clash = new_user("Taken", "fresh@x.org");
    assert!(store.insert_user(&clash).await.is_err());
    assert!(store
        .find_user_by_email("fresh@x.org")
        .await
        .expect("find")
        .is_none());
    assert!(store
        .find_user_by_id(clash.id)
        .await
        .expect("find")
        .is_none());
}

pub async fn lookup_by_username_ignores_case<S: Store>(store: &S) {
    let user = new_user("MixedCase", "mc@x.org");
    store.insert_user(&user).await.expect("insert");
    let key = Username::parse("MIXEDcase")
        .expect("valid")
        .key()
        .to_owned();
    let found = store
        .find_user_by_username(&key)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.id, user.id);
    assert_eq!(found.username, "MixedCase");
}

pub async fn lookup_by_email_ignores_case<S: Store>(store: &S) {
    let user = new_user("bob", "Bob@Example.ORG");
    store.insert_user(&user).await.expect("insert");
    let key = Email::parse("bob@example.org")
        .expect("valid")
        .key()
        .to_owned();
    let found = store
        .find_user_by_email(&key)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.id, user.id);
    assert_eq!(found.email, "Bob@Example.ORG");
}

pub async fn unicode_emails_are_kept_and_found<S: Store>(store: &S) {
    let user = new_user("juergen", "Jürgen@Bücher.de");
    store.insert_user(&user).await.expect("insert");
    let key = Email::parse("JÜRGEN@BÜCHER.DE")
        .expect("valid")
        .key()
        .to_owned();
    let found = store
        .find_user_by_email(&key)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.email, "Jürgen@Bücher.de");
}

pub async fn unknown_user_is_none<S: Store>(store: &S) {
    store
        .insert_user(&new_user("someone", "someone@x.org"))
        .await
        .expect("insert");
    assert!(store
        .find_user_by_id(Uuid::now_v7())
        .await
        .expect("find")
        .is_none());
    assert!(store
        .find_user_by_username("nobody")
        .await
        .expect("find")
        .is_none());
    assert!(store
        .find_user_by_email("nobody@x.org")
        .await
        .expect("find")
        .is_none());
}

pub async fn concurrent_registrations_of_one_name_have_one_winner<S: Store>(store: &S) {
    // The store is shared by reference; scoped spawning needs 'static, so
    // race on a joined set of futures driven by the multi-thread runtime.
    let attempts = 50;
    let store = Arc::new(store);
    let results = futures::future::join_all((0..attempts).map(|i| {
        let store = Arc::clone(&store);
        let case = if i % 2 == 0 { "racer" } else { "RACER" };
        async move {
            store
                .insert_user(&new_user(case, &format!("racer{i}@x.org")))
                .await
        }
    }))
    .await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one registration wins: {results:?}");
    for result in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(result, Err(StoreError::Conflict(UniqueField::Username))),
            "losers conflict on username: {result:?}"
        );
    }
}

pub async fn set_password_hash_replaces_it<S: Store>(store: &S) {
    let user = new_user("hasher", "hasher@x.org");
    store.insert_user(&user).await.expect("insert");
    store
        .set_password_hash(user.id, "$argon2id$new")
        .await
        .expect("update");
    let found = store
        .find_user_by_id(user.id)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.password_hash, "$argon2id$new");
}

pub async fn set_disabled_round_trips<S: Store>(store: &S) {
    let user = new_user("switch", "switch@x.org");
    store.insert_user(&user).await.expect("insert");
    store.set_disabled(user.id, true).await.expect("disable");
    assert!(
        store
            .find_user_by_id(user.id)
            .await
            .expect("find")
            .expect("found")
            .disabled
    );
    store.set_disabled(user.id, false).await.expect("enable");
    assert!(
        !store
            .find_user_by_id(user.id)
            .await
            .expect("find")
            .expect("found")
            .disabled
    );
}

pub async fn changing_a_missing_user_is_not_found<S: Store>(store: &S) {
    let missing = Uuid::now_v7();
    assert!(matches!(
        store.set_password_hash(missing, "x").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.set_disabled(missing, true).await,
        Err(StoreError::NotFound)
    ));
    assert!(!store.delete_user(missing).await.expect("delete"));
}

pub async fn delete_user_frees_its_names<S: Store>(store: &S) {
    let user = new_user("leaver", "leaver@x.org");
    store.insert_user(&user).await.expect("insert");
    assert!(store.delete_user(user.id).await.expect("delete"));
    assert!(store
        .find_user_by_id(user.id)
        .await
        .expect("find")
        .is_none());
    store
        .insert_user(&new_user("LEAVER", "LEAVER@x.org"))
        .await
        .expect("names are free again");
}

pub async fn ping_answers<S: Store>(store: &S) {
    store.ping().await.expect("ping");
    assert!(!store.backend_name().is_empty());
}

/// Every username of one listing call.
async fn usernames<S: Store>(store: &S, query: &UserQuery) -> Vec<String> {
    store
        .search_users(query)
        .await
        .expect("search users")
        .into_iter()
        .map(|u| u.username)
        .collect()
}

fn page(after: Option<&str>, limit: u32) -> UserQuery {
    UserQuery::search(None, after.map(str::to_lowercase), limit)
}

pub async fn user_pages_follow_byte_order_of_the_username_key<S: Store>(store: &S) {
    // '-' < '.' < '_' < letters in bytes; a collation-aware order would
    // put these elsewhere (and differ between databases).
    for name in ["charlie", "Alpha", "bravo", "a_b", "a.b", "a-b"] {
        store
            .insert_user(&new_user(name, &format!("{name}@x.org")))
            .await
            .expect("insert");
    }
    let expected = ["a-b", "a.b", "a_b", "Alpha", "bravo", "charlie"];
    assert_eq!(usernames(store, &page(None, 10)).await, expected);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let names = usernames(store, &page(after.as_deref(), 4)).await;
        if names.is_empty() {
            break;
        }
        assert!(names.len() <= 4, "a page holds at most its limit");
        after = names.last().cloned();
        seen.extend(names);
    }
    assert_eq!(seen, expected, "pages join up without gaps or repeats");
    assert!(usernames(store, &page(Some("charlie"), 10))
        .await
        .is_empty());
}

pub async fn listed_accounts_read_back_whole<S: Store>(store: &S) {
    let plain = new_user("plain", "plain@x.org");
    let flagged = new_user("Flagged", "\"Q\\uote\"@jürgen.example");
    for user in [&plain, &flagged] {
        store.insert_user(user).await.expect("insert");
    }
    store.set_disabled(flagged.id, true).await.expect("disable");
    store
        .update_email(flagged.id, "Ünï@jürgen.example", "ünï@jürgen.example", true)
        .await
        .expect("verify");
    let listed = store
        .search_users(&UserQuery::search(None, None, 10))
        .await
        .expect("search users");
    let mut expected = Vec::new();
    for user in [&flagged, &plain] {
        let found = store.find_user_by_id(user.id).await.expect("find");
        expected.push(UserSummary::from(found.expect("present")));
    }
    assert_eq!(listed, expected, "every field, as a lookup by id reads it");
    assert!(listed[0].disabled && listed[0].email_verified);
    assert!(!listed[1].disabled && !listed[1].email_verified);
}

pub async fn user_search_matches_a_prefix_of_username_or_email<S: Store>(store: &S) {
    for (name, email) in [
        ("carol", "c@x.org"),
        ("zelda", "Caroline@Example.org"),
        ("carl", "carl@x.org"),
        ("a_b", "ab@x.org"),
        ("axb", "axb@x.org"),
        ("dan", "dan@jürgen.example"),
    ] {
        store
            .insert_user(&new_user(name, email))
            .await
            .expect("insert");
    }
    let search = |typed: &str| UserQuery::search(Some(typed), None, 10);
    assert_eq!(
        usernames(store, &search("CARo")).await,
        ["carol", "zelda"],
        "username or email prefix, any case, username order"
    );
    assert_eq!(
        usernames(store, &search("car")).await,
        ["carl", "carol", "zelda"]
    );
    assert_eq!(
        usernames(store, &search("a_")).await,
        ["a_b"],
        "'_' and '%' are characters, not wildcards"
    );
    assert!(usernames(store, &search("%")).await.is_empty());
    assert_eq!(usernames(store, &search("dan@JÜR")).await, ["dan"]);
    assert!(usernames(store, &search("nobody")).await.is_empty());
    let second_page = UserQuery::search(Some("car"), Some("carl".into()), 1);
    assert_eq!(
        usernames(store, &second_page).await,
        ["carol"],
        "search pages too"
    );
}

pub async fn user_pages_stay_stable_while_accounts_are_inserted<S: Store>(store: &S) {
    let existing: Vec<String> = (0..40).map(|i| format!("user{i:03}")).collect();
    for name in &existing {
        store
            .insert_user(&new_user(name, &format!("{name}@x.org")))
            .await
            .expect("insert");
    }
    let store = Arc::new(store);
    let inserting = {
        let store = Arc::clone(&store);
        async move {
            for i in 0..40 {
                // Before, between and after the existing names.
                let name = format!("user{:03}x", i * 2);
                store
                    .insert_user(&new_user(&name, &format!("{name}@x.org")))
                    .await
                    .expect("concurrent insert");
                tokio::task::yield_now().await;
            }
        }
    };
    let paging = {
        let store = Arc::clone(&store);
        async move {
            let mut seen: Vec<String> = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let names = usernames(*store, &page(after.as_deref(), 7)).await;
                if names.is_empty() {
                    return seen;
                }
                after = names.last().cloned();
                seen.extend(names);
                tokio::task::yield_now().await;
            }
        }
    };
    let ((), seen) = futures::join!(inserting, paging);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        seen, sorted,
        "strictly ascending: nothing repeated or reordered"
    );
    for name in &existing {
        assert!(
            seen.contains(name),
            "{name} was present throughout, so it is listed"
        );
    }
}

pub async fn update_email_moves_the_address_or_conflicts<S: Store>(store: &S) {
    let user = new_user("mover", "old@x.org");
    let other = new_user("stayer", "taken@x.org");
    store.insert_user(&user).await.expect("insert");
    store.insert_user(&other).await.expect("insert");
    let new = Email::parse("New@X.org").expect("valid");
    store
        .update_email(user.id, new.as_str(), new.key(), true)
        .await
        .expect("update email");
    let moved = store
        .find_user_by_email("new@x.org")
        .await
        .expect("find")
        .expect("found by the new address");
    assert_eq!(
        (moved.id, moved.email.as_str(), moved.email_verified),
        (user.id, "New@X.org", true)
    );
    assert!(store
        .find_user_by_email("old@x.org")
        .await
        .expect("find")
        .is_none());
    // The old address is free again.
    store
        .insert_user(&new_user("taker", "old@x.org"))
        .await
        .expect("old address reusable");

    let taken = Email::parse("TAKEN@x.org").expect("valid");
    let err = store
        .update_email(user.id, taken.as_str(), taken.key(), false)
        .await
        .expect_err("another account's address");
    assert!(
        matches!(err, StoreError::Conflict(UniqueField::Email)),
        "{err:?}"
    );
    let unchanged = store
        .find_user_by_id(user.id)
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(unchanged.email, "New@X.org", "a conflict changes nothing");
    let err = store
        .update_email(Uuid::now_v7(), new.as_str(), "nobody@x.org", false)
        .await
        .expect_err("missing account");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}
