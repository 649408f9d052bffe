//! `AuthService` use cases exercised directly over the memory store (no
//! HTTP): the rules that live in the service rather than in a store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::{
    AuthError, AuthService, Observed, Registration, SessionPolicy, SessionStore, StoreObserver,
    ThrottlePolicy, ThrottleStore, TokenError, TokenKind, User,
};
use store_memory::MemoryStore;

const PASSWORD: &str = "correct horse battery";

/// Remembers which store calls a use case made, in order.
#[derive(Debug, Clone, Default)]
struct CallLog(Arc<Mutex<Vec<&'static str>>>);

impl StoreObserver for CallLog {
    fn store_call(&self, operation: &'static str, _elapsed: Duration, _ok: bool) {
        self.0.lock().unwrap().push(operation);
    }
}

impl CallLog {
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

type Service = AuthService<Observed<MemoryStore, CallLog>>;

fn service_with(policy: SessionPolicy) -> (Service, CallLog) {
    let hasher = common::cheap_hasher();
    let tokens = common::tokens("https://auth.example.org");
    let calls = CallLog::default();
    let store = Observed::new(MemoryStore::new(), calls.clone());
    (AuthService::new(store, hasher, tokens, policy), calls)
}

async fn register(service: &Service, username: &str) -> User {
    service
        .register(
            &Registration {
                username: username.into(),
                email: format!("{username}@example.org"),
                password: PASSWORD.into(),
            },
            &[],
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_session() {
    let (service, _) = service_with(SessionPolicy::default());
    register(&service, "alice").await;
    let first = service.login("alice", PASSWORD, None).await.unwrap();
    let second = service.refresh(first.refresh.expose()).await.unwrap();
    assert_eq!(second.session_id, first.session_id);

    let replay = service.refresh(first.refresh.expose()).await;
    assert!(matches!(replay, Err(AuthError::InvalidRefreshToken)));
    let successor = service.refresh(second.refresh.expose()).await;
    assert!(
        matches!(successor, Err(AuthError::InvalidRefreshToken)),
        "the legitimate successor died with the session"
    );
    let access = service.current_user(&second.access.token).await;
    assert!(matches!(
        access,
        Err(AuthError::InvalidToken(TokenError::Revoked))
    ));
}

#[tokio::test]
async fn within_the_grace_window_a_repeated_refresh_gets_the_same_successor() {
    let (service, _) = service_with(SessionPolicy {
        refresh_reuse_grace: Duration::from_secs(10),
        ..SessionPolicy::default()
    });
    register(&service, "tabs").await;
    let login = service.login("tabs", PASSWORD, None).await.unwrap();
    let first_tab = service.refresh(login.refresh.expose()).await.unwrap();
    let second_tab = service.refresh(login.refresh.expose()).await.unwrap();
    assert_eq!(first_tab.refresh.expose(), second_tab.refresh.expose());
    assert_eq!(first_tab.session_id, second_tab.session_id);
    let next = service.refresh(first_tab.refresh.expose()).await.unwrap();
    assert!(service.current_user(&next.access.token).await.is_ok());
}

#[tokio::test]
async fn without_a_grace_window_nothing_is_sealed_for_a_second_use() {
    let (service, _) = service_with(SessionPolicy::default());
    register(&service, "strict").await;
    let login = service.login("strict", PASSWORD, None).await.unwrap();
    service.refresh(login.refresh.expose()).await.unwrap();
    let (record, _, _) = service
        .store()
        .find_refresh_token(&login.refresh.digest())
        .await
        .unwrap()
        .unwrap();
    assert!(record.used_at.is_some());
    assert!(
        record.successor_sealed.is_none(),
        "strict rotation keeps no copy"
    );
}

#[tokio::test]
async fn failed_logins_are_counted_per_account_whatever_name_was_typed() {
    let (service, _) = service_with(SessionPolicy {
        throttle: ThrottlePolicy {
            max_failures: 3,
            ..ThrottlePolicy::default()
        },
        ..SessionPolicy::default()
    });
    let bob = register(&service, "bob").await;
    for login in ["bob", "BOB@example.org"] {
        let wrong = service.login(login, "wrong guess", None).await;
        assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    }
    let key = format!("user:{}", bob.id);
    let state = service.store().throttle_state(&key).await.unwrap();
    assert_eq!(state.map(|s| s.failures), Some(2), "one key for both names");
    let third = service.login("Bob", "wrong again", None).await;
    assert!(matches!(third, Err(AuthError::InvalidCredentials)));
    let locked = service.login("bob@example.org", PASSWORD, None).await;
    assert!(
        matches!(locked, Err(AuthError::Throttled { .. })),
        "even the right password waits"
    );
}

#[tokio::test]
async fn failed_logins_for_unknown_names_are_counted_by_the_name() {
    let (service, _) = service_with(SessionPolicy::default());
    for login in ["Ghost", "ghost@Example.org"] {
        let _ = service.login(login, "guess", None).await;
    }
    let store = service.store();
    let by_name = store.throttle_state("username:ghost").await.unwrap();
    let by_email = store
        .throttle_state("email:ghost@example.org")
        .await
        .unwrap();
    assert_eq!(by_name.map(|s| s.failures), Some(1));
    assert_eq!(by_email.map(|s| s.failures), Some(1));
}

#[tokio::test]
async fn a_successful_login_clears_the_count() {
    let (service, _) = service_with(SessionPolicy::default());
    let carol = register(&service, "carol").await;
    let _ = service.login("carol", "wrong guess", None).await;
    service.login("carol", PASSWORD, None).await.unwrap();
    let key = format!("user:{}", carol.id);
    assert!(service
        .store()
        .throttle_state(&key)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn requested_scopes_are_narrowed_to_the_allowed_ones_and_kept_on_refresh() {
    let (service, _) = service_with(SessionPolicy {
        allowed_scopes: ["read", "write"].map(String::from).into(),
        ..SessionPolicy::default()
    });
    register(&service, "dana").await;
    let narrowed = service
        .login("dana", PASSWORD, Some("write admin read"))
        .await
        .unwrap();
    assert_eq!(narrowed.scope.as_deref(), Some("read write"));
    assert_eq!(narrowed.access.claims.scope.as_deref(), Some("read write"));
    let refreshed = service.refresh(narrowed.refresh.expose()).await.unwrap();
    assert_eq!(refreshed.scope.as_deref(), Some("read write"));

    let nothing_left = service
        .login("dana", PASSWORD, Some("admin"))
        .await
        .unwrap();
    assert_eq!(nothing_left.scope, None);
    let none_asked = service.login("dana", PASSWORD, None).await.unwrap();
    assert_eq!(none_asked.scope, None);
}

#[tokio::test]
async fn revocation_looks_up_the_hinted_kind_first_and_falls_back_to_the_other() {
    let (service, calls) = service_with(SessionPolicy::default());
    register(&service, "erin").await;

    // An access token needs no store lookup to find its session; every
    // revocation that ends a session is audited.
    let grant = service.login("erin", PASSWORD, None).await.unwrap();
    calls.take();
    service.revoke(&grant.access.token, None).await.unwrap();
    assert_eq!(calls.take(), ["revoke_session", "append_audit"]);

    // A wrong hint costs one lookup, then the other kind is tried.
    let grant = service.login("erin", PASSWORD, None).await.unwrap();
    calls.take();
    service
        .revoke(&grant.access.token, Some(TokenKind::Refresh))
        .await
        .unwrap();
    assert_eq!(
        calls.take(),
        ["find_refresh_token", "revoke_session", "append_audit"]
    );
    assert!(service.current_user(&grant.access.token).await.is_err());

    // A refresh token under the access hint: verification fails, then lookup.
    let grant = service.login("erin", PASSWORD, None).await.unwrap();
    calls.take();
    service
        .revoke(grant.refresh.expose(), Some(TokenKind::Access))
        .await
        .unwrap();
    assert_eq!(
        calls.take(),
        ["find_refresh_token", "revoke_session", "append_audit"]
    );
    assert!(service.refresh(grant.refresh.expose()).await.is_err());
    calls.take();

    // Unknown tokens are not an error (RFC 7009 §2.2) and change nothing.
    service.revoke("not-a-token", None).await.unwrap();
    assert_eq!(calls.take(), ["find_refresh_token"]);
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let (service, _) = service_with(SessionPolicy::default());
    register(&service, "frank").await;
    let here = service.login("frank", PASSWORD, None).await.unwrap();
    let elsewhere = service.login("frank", PASSWORD, None).await.unwrap();
    let (session, user) = service.current_session(&here.access.token).await.unwrap();
    service
        .change_password(&session, &user, PASSWORD, "a brand new passphrase", &[])
        .await
        .unwrap();
    assert!(service.current_user(&here.access.token).await.is_ok());
    assert!(service.current_user(&elsewhere.access.token).await.is_err());
    assert!(service.login("frank", PASSWORD, None).await.is_err());
    assert!(service
        .login("frank", "a brand new passphrase", None)
        .await
        .is_ok());
}

#[tokio::test]
async fn a_page_of_users_or_of_the_audit_log_is_one_store_call() {
    let (service, calls) = service_with(SessionPolicy::default());
    for i in 0..7 {
        register(&service, &format!("member{i}")).await;
    }
    calls.take();
    let page = service
        .list_users(auth_core::UserQuery::search(None, None, 3))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(page.next.as_deref(), Some("member2"));
    assert_eq!(calls.take(), ["search_users"], "no call per user");
    let last = service
        .list_users(auth_core::UserQuery::search(None, page.next, 10))
        .await
        .unwrap();
    assert_eq!(last.items.len(), 4);
    assert_eq!(last.next, None, "the last page says so");
    calls.take();
    let audit = service
        .audit_page(auth_core::AuditQuery {
            limit: 5,
            ..auth_core::AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 5);
    assert!(audit.next.is_some());
    assert_eq!(calls.take(), ["query_audit"]);
}

#[tokio::test]
async fn the_purge_deletes_audit_records_past_their_retention_only() {
    use auth_core::store::AuditStore;
    let policy = SessionPolicy {
        audit_retention: Duration::from_secs(30 * 24 * 3600),
        ..SessionPolicy::default()
    };
    let (service, _) = service_with(policy);
    register(&service, "keeper").await;
    let old = auth_core::AuditEvent {
        id: uuid::Uuid::now_v7(),
        time: chrono::Utc::now() - chrono::Duration::days(31),
        actor: "operator".into(),
        action: "user.created".into(),
        target: None,
        outcome: "success".into(),
        client_address: None,
        request_id: None,
    };
    service.store().append_audit(&old).await.unwrap();
    let everything = || auth_core::AuditQuery {
        limit: 100,
        ..auth_core::AuditQuery::default()
    };
    assert_eq!(
        service
            .store()
            .query_audit(&everything())
            .await
            .unwrap()
            .len(),
        2
    );
    service.purge_expired().await.unwrap();
    let kept = service.store().query_audit(&everything()).await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].action, "user.created");
    assert_ne!(kept[0].id, old.id, "the recent record stays");

    // Zero retention keeps everything.
    let (forever, _) = service_with(SessionPolicy {
        audit_retention: Duration::ZERO,
        ..SessionPolicy::default()
    });
    forever.store().append_audit(&old).await.unwrap();
    forever.purge_expired().await.unwrap();
    assert_eq!(
        forever
            .store()
            .query_audit(&everything())
            .await
            .unwrap()
            .len(),
        1
    );
}
