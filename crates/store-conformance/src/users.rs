//! Accounts: uniqueness, case-insensitive lookup, atomicity under concurrency.

use std::sync::Arc;

use auth_core::store::{Store, StoreError, UniqueField};
use auth_core::{Email, NewUser, Username};
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

pub async fn list_users_pages_in_username_order<S: Store>(store: &S) {
    for name in ["charlie", "Alpha", "bravo"] {
        store
            .insert_user(&new_user(name, &format!("{name}@x.org")))
            .await
            .expect("insert");
    }
    let all: Vec<String> = store
        .list_users(0, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(all, ["Alpha", "bravo", "charlie"]);
    let page: Vec<String> = store
        .list_users(1, 1)
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(page, ["bravo"]);
    assert!(store.list_users(3, 10).await.expect("list").is_empty());
}
