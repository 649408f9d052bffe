//! Sessions and refresh tokens: activity, atomic single use, revocation, purge.

use std::sync::Arc;

use auth_core::store::{Store, StoreError};
use auth_core::{Consumed, NewRefreshToken, Session, TokenDigest};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::users::new_user;

/// A stored user and a session of theirs with one refresh token.
#[derive(Debug)]
pub struct Fixture {
    pub user_id: Uuid,
    pub session: Session,
    pub first: NewRefreshToken,
}

/// Time truncated to microseconds, as every store keeps it.
pub fn now() -> DateTime<Utc> {
    auth_core::model::to_stored_precision(Utc::now())
}

pub fn digest(seed: &str) -> TokenDigest {
    let mut d = [0u8; 32];
    for (i, b) in seed.bytes().chain(Uuid::new_v4().into_bytes()).enumerate() {
        d[i % 32] ^= b.rotate_left(i as u32 % 8);
    }
    d
}

pub fn token(seed: &str, issued_at: DateTime<Utc>, ttl: Duration) -> NewRefreshToken {
    NewRefreshToken {
        digest: digest(seed),
        issued_at,
        expires_at: issued_at + ttl,
        sealed: Some(vec![7u8; 32]),
    }
}

/// A plain session of `user_id` (no scope, client `webapp`) starting with
/// `first`, created when `first` was issued.
pub fn session_for(user_id: Uuid, first: &NewRefreshToken) -> Session {
    Session {
        id: Uuid::now_v7(),
        user_id,
        created_at: first.issued_at,
        expires_at: first.expires_at,
        revoked_at: None,
        scope: None,
        client_id: "webapp".into(),
        auth_time: None,
        amr: None,
        browser_session_id: None,
    }
}

pub async fn fixture<S: Store>(store: &S, username: &str) -> Fixture {
    let user = new_user(username, &format!("{username}@example.org"));
    store.insert_user(&user).await.expect("insert user");
    let at = now();
    let first = token("first", at, Duration::days(30));
    let session = Session {
        id: Uuid::now_v7(),
        user_id: user.id,
        created_at: at,
        expires_at: first.expires_at,
        revoked_at: None,
        scope: Some("profile".into()),
        client_id: "webapp".into(),
        auth_time: Some(at - Duration::minutes(1)),
        amr: Some("pwd".into()),
        browser_session_id: Some(Uuid::now_v7()),
    };
    store
        .create_session(&session, &first)
        .await
        .expect("create session");
    Fixture {
        user_id: user.id,
        session,
        first,
    }
}

pub async fn created_session_is_found_active_with_its_user<S: Store>(store: &S) {
    let f = fixture(store, "sessioned").await;
    let (session, user) = store
        .find_active_session(f.session.id, now())
        .await
        .expect("find")
        .expect("active");
    assert_eq!(session, f.session);
    assert_eq!(user.id, f.user_id);
    assert!(store
        .find_active_session(Uuid::now_v7(), now())
        .await
        .expect("find")
        .is_none());
}

pub async fn sessions_of_unknown_users_are_refused<S: Store>(store: &S) {
    let at = now();
    let first = token("orphan", at, Duration::days(1));
    let session = session_for(Uuid::now_v7(), &first);
    let err = store
        .create_session(&session, &first)
        .await
        .expect_err("no such user");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(store
        .find_refresh_token(&first.digest)
        .await
        .expect("find")
        .is_none());
}

pub async fn expired_and_revoked_sessions_are_not_active<S: Store>(store: &S) {
    let f = fixture(store, "ending").await;
    let later = f.session.expires_at + Duration::seconds(1);
    assert!(store
        .find_active_session(f.session.id, later)
        .await
        .expect("find")
        .is_none());
    assert!(store
        .revoke_session(f.session.id, now())
        .await
        .expect("revoke"));
    assert!(!store
        .revoke_session(f.session.id, now())
        .await
        .expect("again"));
    assert!(store
        .find_active_session(f.session.id, now())
        .await
        .expect("find")
        .is_none());
}

pub async fn consuming_rotates_once_then_reports_reuse<S: Store>(store: &S) {
    let f = fixture(store, "rotator").await;
    let at = now() + Duration::seconds(1);
    let second = token("second", at, Duration::days(30));
    match store
        .consume_refresh_token(&f.first.digest, &second, at)
        .await
        .expect("consume")
    {
        Consumed::Rotated { session, user } => {
            assert_eq!(session.id, f.session.id);
            assert_eq!(session.expires_at, second.expires_at, "expiry slides");
            assert_eq!(user.id, f.user_id);
        }
        other => panic!("expected a rotation, got {other:?}"),
    }
    let third = token("third", at, Duration::days(30));
    match store
        .consume_refresh_token(&f.first.digest, &third, at + Duration::seconds(1))
        .await
        .expect("consume again")
    {
        Consumed::AlreadyUsed { token, session, .. } => {
            assert_eq!(token.used_at, Some(at));
            assert_eq!(token.successor_digest, Some(second.digest));
            assert_eq!(token.successor_sealed, second.sealed);
            assert_eq!(session.id, f.session.id);
        }
        other => panic!("expected reuse, got {other:?}"),
    }
    assert!(
        store
            .find_refresh_token(&third.digest)
            .await
            .expect("find")
            .is_none(),
        "a reuse stores nothing"
    );
    let (record, _, _) = store
        .find_refresh_token(&second.digest)
        .await
        .expect("find")
        .expect("successor stored");
    assert_eq!(record.session_id, f.session.id);
    assert!(record.used_at.is_none());
    assert!(matches!(
        store
            .consume_refresh_token(&second.digest, &token("fourth", at, Duration::days(1)), at)
            .await
            .expect("consume successor"),
        Consumed::Rotated { .. }
    ));
}

pub async fn unknown_expired_or_revoked_tokens_are_invalid<S: Store>(store: &S) {
    let f = fixture(store, "invalid").await;
    let next = token("next", now(), Duration::days(1));
    assert_eq!(
        store
            .consume_refresh_token(&digest("unknown"), &next, now())
            .await
            .expect("consume"),
        Consumed::Invalid
    );
    let past_expiry = f.first.expires_at + Duration::seconds(1);
    assert_eq!(
        store
            .consume_refresh_token(&f.first.digest, &next, past_expiry)
            .await
            .expect("consume"),
        Consumed::Invalid
    );
    store
        .revoke_session(f.session.id, now())
        .await
        .expect("revoke");
    assert_eq!(
        store
            .consume_refresh_token(&f.first.digest, &next, now())
            .await
            .expect("consume"),
        Consumed::Invalid
    );
    assert!(store
        .find_refresh_token(&next.digest)
        .await
        .expect("find")
        .is_none());
}

pub async fn concurrent_refreshes_with_one_token_rotate_exactly_once<S: Store>(store: &S) {
    let f = fixture(store, "racing").await;
    let store = Arc::new(store);
    let at = now();
    let successors: Vec<NewRefreshToken> = (0..10)
        .map(|i| token(&format!("racer{i}"), at, Duration::days(1)))
        .collect();
    let outcomes = futures::future::join_all(successors.iter().map(|next| {
        let store = Arc::clone(&store);
        let digest = f.first.digest;
        async move { store.consume_refresh_token(&digest, next, at).await }
    }))
    .await;
    let rotated: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Ok(Consumed::Rotated { .. })))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(rotated.len(), 1, "exactly one rotation: {outcomes:?}");
    for (i, outcome) in outcomes.iter().enumerate() {
        if i != rotated[0] {
            assert!(
                matches!(outcome, Ok(Consumed::AlreadyUsed { .. })),
                "losers see the token as used: {outcome:?}"
            );
        }
    }
    for (i, next) in successors.iter().enumerate() {
        let stored = store.find_refresh_token(&next.digest).await.expect("find");
        assert_eq!(
            stored.is_some(),
            i == rotated[0],
            "only the winner's successor exists"
        );
    }
}

pub async fn revoking_all_of_a_users_sessions_can_keep_one<S: Store>(store: &S) {
    let f = fixture(store, "many").await;
    let mut others = Vec::new();
    for i in 0..3 {
        let at = now();
        let first = token(&format!("other{i}"), at, Duration::days(1));
        let session = session_for(f.user_id, &first);
        store
            .create_session(&session, &first)
            .await
            .expect("create");
        others.push(session.id);
    }
    let bystander = fixture(store, "bystander").await;
    let revoked = store
        .revoke_user_sessions(f.user_id, Some(f.session.id), now())
        .await
        .expect("revoke");
    assert_eq!(revoked, 3);
    let active = |id| async move {
        store
            .find_active_session(id, now())
            .await
            .expect("find")
            .is_some()
    };
    assert!(active(f.session.id).await, "the kept session lives");
    for id in others {
        assert!(!active(id).await);
    }
    assert!(
        active(bystander.session.id).await,
        "other users are untouched"
    );
    assert_eq!(
        store
            .revoke_user_sessions(f.user_id, None, now())
            .await
            .expect("revoke"),
        1
    );
}

pub async fn purge_removes_ended_sessions_and_their_tokens<S: Store>(store: &S) {
    let live = fixture(store, "live").await;
    let revoked = fixture(store, "revoked").await;
    store
        .revoke_session(revoked.session.id, now())
        .await
        .expect("revoke");
    let user = new_user("stale", "stale@example.org");
    store.insert_user(&user).await.expect("insert");
    let long_ago = now() - Duration::days(60);
    let old_token = token("old", long_ago, Duration::days(30));
    let expired = session_for(user.id, &old_token);
    store
        .create_session(&expired, &old_token)
        .await
        .expect("create");

    let purged = store
        .purge_expired(now() + Duration::seconds(1))
        .await
        .expect("purge");
    assert_eq!(purged, 2);
    assert!(store
        .find_refresh_token(&old_token.digest)
        .await
        .expect("find")
        .is_none());
    assert!(store
        .find_refresh_token(&revoked.first.digest)
        .await
        .expect("find")
        .is_none());
    assert!(store
        .find_refresh_token(&live.first.digest)
        .await
        .expect("find")
        .is_some());
    assert!(store
        .find_active_session(live.session.id, now())
        .await
        .expect("find")
        .is_some());
}

pub async fn deleting_a_user_ends_their_sessions<S: Store>(store: &S) {
    let f = fixture(store, "deleted").await;
    assert!(store.delete_user(f.user_id).await.expect("delete"));
    assert!(store
        .find_active_session(f.session.id, now())
        .await
        .expect("find")
        .is_none());
    assert!(store
        .find_refresh_token(&f.first.digest)
        .await
        .expect("find")
        .is_none());
}
