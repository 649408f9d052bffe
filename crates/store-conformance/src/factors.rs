//! Second factors, recovery codes and ceremony records.

use auth_core::store::{Store, StoreError, UniqueField};
use auth_core::{Ceremony, CeremonyKind, Factor, FactorKind};
use chrono::Duration;
use uuid::Uuid;

use crate::flows::browser_session;
use crate::sessions::{digest, now, session_for, token};
use crate::users::new_user;

fn factor(user_id: Uuid, kind: FactorKind, credential: Option<&str>) -> Factor {
    Factor {
        id: Uuid::now_v7(),
        user_id,
        kind,
        name: format!("{} of {user_id}", kind.as_str()),
        data: "v1.sealed-or-credential".into(),
        credential_id: credential.map(str::to_owned),
        last_step: 0,
        created_at: now(),
        last_used_at: None,
    }
}

fn ceremony(kind: CeremonyKind, user_id: Option<Uuid>, ttl: Duration) -> Ceremony {
    Ceremony {
        digest: digest("ceremony"),
        kind,
        user_id,
        data: r#"{"state":"opaque"}"#.into(),
        expires_at: now() + ttl,
    }
}

async fn stored_user<S: Store>(store: &S, name: &str) -> Uuid {
    let user = new_user(name, &format!("{name}@example.org"));
    store.insert_user(&user).await.expect("insert user");
    user.id
}

pub async fn factors_read_back_and_their_unique_rules_hold<S: Store>(store: &S) {
    let ada = stored_user(store, "ada").await;
    let bob = stored_user(store, "bob").await;
    let app = factor(ada, FactorKind::Totp, None);
    let key = factor(ada, FactorKind::Passkey, Some("cred-1"));
    store.add_factor(&app).await.expect("app");
    store.add_factor(&key).await.expect("passkey");
    assert_eq!(
        store.list_factors(ada).await.expect("list"),
        vec![app.clone(), key.clone()]
    );
    assert_eq!(store.list_factors(bob).await.expect("list"), vec![]);
    assert_eq!(
        store.find_passkey("cred-1").await.expect("find"),
        Some(key.clone())
    );
    assert_eq!(store.find_passkey("cred-2").await.expect("find"), None);

    let second_app = store.add_factor(&factor(ada, FactorKind::Totp, None)).await;
    assert!(
        matches!(second_app, Err(StoreError::Conflict(UniqueField::Factor))),
        "{second_app:?}"
    );
    let stolen = store
        .add_factor(&factor(bob, FactorKind::Passkey, Some("cred-1")))
        .await;
    assert!(
        matches!(stolen, Err(StoreError::Conflict(UniqueField::Factor))),
        "{stolen:?}"
    );
    // Bob may have his own app and key; Ada may have several passkeys.
    store
        .add_factor(&factor(bob, FactorKind::Totp, None))
        .await
        .expect("bob's app");
    store
        .add_factor(&factor(ada, FactorKind::Passkey, Some("cred-3")))
        .await
        .expect("second passkey");
    let nobody = store
        .add_factor(&factor(Uuid::now_v7(), FactorKind::Totp, None))
        .await;
    assert!(matches!(nobody, Err(StoreError::NotFound)), "{nobody:?}");
    assert_eq!(store.list_factors(ada).await.expect("list").len(), 3);
}

pub async fn a_totp_step_is_accepted_once_and_only_forward<S: Store>(store: &S) {
    let ada = stored_user(store, "ada").await;
    let app = factor(ada, FactorKind::Totp, None);
    store.add_factor(&app).await.expect("app");
    let at = now();
    assert!(store
        .advance_totp_step(app.id, 1000, at)
        .await
        .expect("advance"));
    assert!(!store
        .advance_totp_step(app.id, 1000, at)
        .await
        .expect("replay"));
    assert!(!store
        .advance_totp_step(app.id, 999, at)
        .await
        .expect("older"));
    assert!(store
        .advance_totp_step(app.id, 1001, at)
        .await
        .expect("next"));
    assert!(!store
        .advance_totp_step(Uuid::now_v7(), 5000, at)
        .await
        .expect("unknown"));
    let stored = store.list_factors(ada).await.expect("list");
    assert_eq!(stored[0].last_step, 1001);
    assert_eq!(stored[0].last_used_at, Some(at));
}

pub async fn concurrent_uses_of_one_totp_step_have_one_winner<S: Store>(store: &S) {
    let ada = stored_user(store, "ada").await;
    let app = factor(ada, FactorKind::Totp, None);
    store.add_factor(&app).await.expect("app");
    let at = now();
    let attempts = (0..8).map(|_| store.advance_totp_step(app.id, 4242, at));
    let outcomes = futures::future::join_all(attempts).await;
    let accepted = outcomes
        .into_iter()
        .filter(|r| *r.as_ref().expect("advance"))
        .count();
    assert_eq!(accepted, 1, "a code is accepted at most once");
}

pub async fn recovery_codes_are_spent_once_and_replaced_whole<S: Store>(store: &S) {
    let ada = stored_user(store, "ada").await;
    let bob = stored_user(store, "bob").await;
    let codes: Vec<_> = (0..10).map(|i| digest(&format!("code-{i}"))).collect();
    store
        .replace_recovery_codes(ada, &codes, now())
        .await
        .expect("replace");
    assert_eq!(store.count_recovery_codes(ada).await.expect("count"), 10);
    assert_eq!(store.count_recovery_codes(bob).await.expect("count"), 0);
    assert!(
        !store.use_recovery_code(bob, &codes[0]).await.expect("bob"),
        "not bob's"
    );
    assert!(store.use_recovery_code(ada, &codes[0]).await.expect("use"));
    assert!(!store
        .use_recovery_code(ada, &codes[0])
        .await
        .expect("reuse"));
    assert_eq!(store.count_recovery_codes(ada).await.expect("count"), 9);

    let racing = (0..6).map(|_| store.use_recovery_code(ada, &codes[1]));
    let wins = futures::future::join_all(racing)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().expect("use"))
        .count();
    assert_eq!(wins, 1);

    let fresh: Vec<_> = (0..10).map(|i| digest(&format!("fresh-{i}"))).collect();
    store
        .replace_recovery_codes(ada, &fresh, now())
        .await
        .expect("regenerate");
    assert!(
        !store.use_recovery_code(ada, &codes[2]).await.expect("old"),
        "old codes stop"
    );
    assert!(store.use_recovery_code(ada, &fresh[2]).await.expect("new"));
    let nobody = store
        .replace_recovery_codes(Uuid::now_v7(), &fresh, now())
        .await;
    assert!(matches!(nobody, Err(StoreError::NotFound)), "{nobody:?}");
}

pub async fn removing_the_last_factor_takes_the_recovery_codes<S: Store>(store: &S) {
    let ada = stored_user(store, "ada").await;
    let bob = stored_user(store, "bob").await;
    let app = factor(ada, FactorKind::Totp, None);
    let key = factor(ada, FactorKind::Passkey, Some("cred-ada"));
    store.add_factor(&app).await.expect("app");
    store.add_factor(&key).await.expect("key");
    let codes = [digest("a"), digest("b")];
    store
        .replace_recovery_codes(ada, &codes, now())
        .await
        .expect("codes");

    assert!(
        !store.remove_factor(bob, app.id).await.expect("bob"),
        "not bob's to remove"
    );
    assert!(store.remove_factor(ada, app.id).await.expect("remove"));
    assert!(!store.remove_factor(ada, app.id).await.expect("again"));
    assert_eq!(
        store.count_recovery_codes(ada).await.expect("count"),
        2,
        "a factor is left"
    );

    let at = now();
    assert!(store
        .record_passkey_use(key.id, "updated-counter", at)
        .await
        .expect("use"));
    let stored = store.list_factors(ada).await.expect("list");
    assert_eq!(stored[0].data, "updated-counter");
    assert_eq!(stored[0].last_used_at, Some(at));

    assert!(store.remove_factor(ada, key.id).await.expect("remove last"));
    assert_eq!(store.count_recovery_codes(ada).await.expect("count"), 0);
    assert!(!store
        .record_passkey_use(key.id, "x", at)
        .await
        .expect("gone"));
}

pub async fn resetting_factors_ends_every_session<S: Store>(store: &S) {
    let ada = stored_user(store, "ada").await;
    let bob = stored_user(store, "bob").await;
    for user in [ada, bob] {
        store
            .add_factor(&factor(user, FactorKind::Totp, None))
            .await
            .expect("app");
        store
            .replace_recovery_codes(user, &[digest("c")], now())
            .await
            .expect("codes");
        let first = token("first", now(), Duration::days(1));
        store
            .create_session(&session_for(user, &first), &first)
            .await
            .expect("session");
        let browser = browser_session(user, Duration::hours(1), Duration::days(1));
        store
            .create_browser_session(&browser)
            .await
            .expect("browser");
    }
    assert_eq!(store.reset_factors(ada, now()).await.expect("reset"), 1);
    assert!(store.list_factors(ada).await.expect("list").is_empty());
    assert_eq!(store.count_recovery_codes(ada).await.expect("count"), 0);
    let (sessions, browsers) = store
        .list_user_sessions(ada, now())
        .await
        .expect("sessions");
    assert!(
        sessions.is_empty() && browsers.is_empty(),
        "{sessions:?} {browsers:?}"
    );
    // Bob keeps everything.
    assert_eq!(store.list_factors(bob).await.expect("list").len(), 1);
    let (sessions, browsers) = store
        .list_user_sessions(bob, now())
        .await
        .expect("sessions");
    assert_eq!((sessions.len(), browsers.len()), (1, 1));
    let nobody = store.reset_factors(Uuid::now_v7(), now()).await;
    assert!(matches!(nobody, Err(StoreError::NotFound)), "{nobody:?}");
}

pub async fn a_ceremony_is_read_until_taken_and_taken_once<S: Store>(store: &S) {
    let ada = stored_user(store, "ada").await;
    let record = ceremony(
        CeremonyKind::PasskeyRegistration,
        Some(ada),
        Duration::minutes(5),
    );
    store.put_ceremony(&record).await.expect("put");
    let found = store
        .find_ceremony(&record.digest, now())
        .await
        .expect("find");
    assert_eq!(found, Some(record.clone()));
    assert_eq!(
        store
            .find_ceremony(&record.digest, now())
            .await
            .expect("find"),
        Some(record.clone())
    );
    assert_eq!(
        store
            .take_ceremony(&record.digest, now())
            .await
            .expect("take"),
        Some(record.clone())
    );
    assert_eq!(
        store
            .take_ceremony(&record.digest, now())
            .await
            .expect("again"),
        None
    );
    assert_eq!(
        store
            .find_ceremony(&record.digest, now())
            .await
            .expect("find"),
        None
    );

    let anonymous = ceremony(
        CeremonyKind::PasskeyAuthentication,
        None,
        Duration::minutes(5),
    );
    store.put_ceremony(&anonymous).await.expect("put");
    let racing = (0..8).map(|_| store.take_ceremony(&anonymous.digest, now()));
    let taken = futures::future::join_all(racing)
        .await
        .into_iter()
        .filter(|r| r.as_ref().expect("take").is_some())
        .count();
    assert_eq!(taken, 1, "a challenge answers once");
}

pub async fn expired_ceremonies_are_neither_found_nor_taken_and_are_purged<S: Store>(store: &S) {
    let old = ceremony(CeremonyKind::SecondFactor, None, Duration::seconds(-1));
    let live = ceremony(CeremonyKind::TotpEnrolment, None, Duration::minutes(5));
    store.put_ceremony(&old).await.expect("put");
    store.put_ceremony(&live).await.expect("put");
    assert_eq!(
        store.find_ceremony(&old.digest, now()).await.expect("find"),
        None
    );
    assert_eq!(
        store.take_ceremony(&old.digest, now()).await.expect("take"),
        None
    );
    store
        .put_ceremony(&ceremony(
            CeremonyKind::SecondFactor,
            None,
            Duration::seconds(-1),
        ))
        .await
        .expect("put");
    store.purge_flows(now()).await.expect("purge");
    assert!(store
        .find_ceremony(&live.digest, now())
        .await
        .expect("find")
        .is_some());
}

pub async fn a_users_sessions_are_listed_newest_first_with_how_they_signed_in<S: Store>(store: &S) {
    let ada = stored_user(store, "ada").await;
    let earlier = token("earlier", now() - Duration::minutes(5), Duration::days(1));
    let later = token("later", now(), Duration::days(1));
    let ended = token("ended", now(), Duration::days(1));
    let first = session_for(ada, &earlier);
    let second = session_for(ada, &later);
    let revoked = session_for(ada, &ended);
    store
        .create_session(&first, &earlier)
        .await
        .expect("session");
    store
        .create_session(&second, &later)
        .await
        .expect("session");
    store
        .create_session(&revoked, &ended)
        .await
        .expect("session");
    store
        .revoke_session(revoked.id, now())
        .await
        .expect("revoke");
    let browser = browser_session(ada, Duration::hours(1), Duration::days(1));
    let idle = browser_session(ada, Duration::seconds(-1), Duration::days(1));
    store
        .create_browser_session(&browser)
        .await
        .expect("browser");
    store.create_browser_session(&idle).await.expect("browser");

    let (sessions, browsers) = store.list_user_sessions(ada, now()).await.expect("list");
    let ids: Vec<_> = sessions.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![second.id, first.id], "active only, newest first");
    assert_eq!(browsers, vec![browser.clone()], "active only, amr kept");
    assert_eq!(browsers[0].amr, vec!["pwd", "otp", "mfa"]);
}

pub async fn deleting_a_user_removes_their_factors<S: Store>(store: &S) {
    let ada = stored_user(store, "ada").await;
    store
        .add_factor(&factor(ada, FactorKind::Passkey, Some("cred-gone")))
        .await
        .expect("key");
    store
        .replace_recovery_codes(ada, &[digest("c")], now())
        .await
        .expect("codes");
    assert!(store.delete_user(ada).await.expect("delete"));
    assert_eq!(store.find_passkey("cred-gone").await.expect("find"), None);
    assert_eq!(store.count_recovery_codes(ada).await.expect("count"), 0);
}
