//! Browser flows: pending authorization requests, single-use codes (races
//! included), browser sign-in sessions, remembered consent, purge.

use std::sync::Arc;

use auth_core::store::{Store, StoreError};
use auth_core::{
    AuthorizationCode, AuthorizationParams, BrowserSession, CodeGrant, CodeRedemption,
    PendingAuthorization, Prompt,
};
use chrono::{Duration, Utc};
use uuid::Uuid;

use crate::sessions::{digest, now};
use crate::users::new_user;

fn params(client_id: &str) -> AuthorizationParams {
    AuthorizationParams {
        client_id: client_id.into(),
        redirect_uri: "https://app.example/cb?x=1".into(),
        scope: Some("email openid".into()),
        state: Some("state with spaces & ünïcode".into()),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        prompt: vec![Prompt::Login, Prompt::Consent],
        max_age: Some(u64::MAX),
        login_hint: None,
        hinted_user: None,
        ui_locales: Some("fr-CA en".into()),
    }
}

fn pending(ttl: Duration) -> PendingAuthorization {
    let at = now();
    PendingAuthorization {
        id: Uuid::new_v4(),
        params: params("webapp"),
        created_at: at,
        expires_at: at + ttl,
    }
}

fn code(user_id: Uuid, ttl: Duration) -> AuthorizationCode {
    let at = now();
    AuthorizationCode {
        digest: digest("code"),
        client_id: "webapp".into(),
        session_id: Uuid::now_v7(),
        grant: CodeGrant {
            redirect_uri: "https://app.example/cb".into(),
            user_id,
            scope: Some("openid".into()),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            nonce: None,
            auth_time: at - Duration::minutes(3),
            browser_session_id: Some(Uuid::now_v7()),
            amr: vec!["pwd".into()],
        },
        created_at: at,
        expires_at: at + ttl,
    }
}

pub(crate) fn browser_session(user_id: Uuid, idle: Duration, absolute: Duration) -> BrowserSession {
    let at = now();
    BrowserSession {
        id: Uuid::now_v7(),
        digest: digest("browser"),
        user_id,
        auth_time: at,
        created_at: at,
        idle_expires_at: at + idle,
        expires_at: at + absolute,
        amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
    }
}

async fn stored_user<S: Store>(store: &S, name: &str) -> Uuid {
    let user = new_user(name, &format!("{name}@example.org"));
    store.insert_user(&user).await.expect("insert user");
    user.id
}

pub async fn pending_requests_read_back_until_they_expire<S: Store>(store: &S) {
    let live = pending(Duration::minutes(10));
    let expired = pending(Duration::seconds(-1));
    store
        .insert_authorization_request(&live)
        .await
        .expect("insert");
    store
        .insert_authorization_request(&expired)
        .await
        .expect("insert");
    let found = store
        .find_authorization_request(live.id, now())
        .await
        .expect("find");
    assert_eq!(found, Some(live.clone()), "every parameter round-trips");
    let gone = store
        .find_authorization_request(expired.id, now())
        .await
        .expect("find");
    assert_eq!(gone, None, "an expired request is not found");
    assert!(store
        .delete_authorization_request(live.id)
        .await
        .expect("delete"));
    assert!(!store
        .delete_authorization_request(live.id)
        .await
        .expect("delete again"));
    assert_eq!(
        store
            .find_authorization_request(live.id, now())
            .await
            .expect("find"),
        None
    );
}

pub async fn a_code_is_redeemed_once_then_reported_used<S: Store>(store: &S) {
    let user_id = stored_user(store, "coder").await;
    let issued = code(user_id, Duration::seconds(60));
    store
        .insert_authorization_code(&issued)
        .await
        .expect("insert");
    let first = store
        .redeem_authorization_code(&issued.digest, now())
        .await
        .expect("redeem");
    assert_eq!(first, CodeRedemption::Redeemed(Box::new(issued.clone())));
    let second = store
        .redeem_authorization_code(&issued.digest, now())
        .await
        .expect("redeem again");
    assert_eq!(
        second,
        CodeRedemption::AlreadyUsed {
            session_id: issued.session_id
        }
    );
    let unknown = store
        .redeem_authorization_code(&digest("unknown"), now())
        .await
        .expect("redeem unknown");
    assert_eq!(unknown, CodeRedemption::Invalid);
}

pub async fn an_expired_code_is_invalid<S: Store>(store: &S) {
    let user_id = stored_user(store, "late").await;
    let expired = code(user_id, Duration::seconds(-1));
    store
        .insert_authorization_code(&expired)
        .await
        .expect("insert");
    let outcome = store
        .redeem_authorization_code(&expired.digest, now())
        .await
        .expect("redeem");
    assert_eq!(outcome, CodeRedemption::Invalid);
}

pub async fn concurrent_redemptions_of_one_code_have_one_winner<S: Store>(store: &S) {
    let user_id = stored_user(store, "racer").await;
    let issued = code(user_id, Duration::seconds(60));
    store
        .insert_authorization_code(&issued)
        .await
        .expect("insert");
    let store = Arc::new(store);
    let attempts = (0..16).map(|_| {
        let store = Arc::clone(&store);
        let digest = issued.digest;
        async move { store.redeem_authorization_code(&digest, Utc::now()).await }
    });
    let outcomes = futures::future::join_all(attempts).await;
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(CodeRedemption::Redeemed(_))))
        .count();
    let reused = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(CodeRedemption::AlreadyUsed { .. })))
        .count();
    assert_eq!((won, reused), (1, 15), "{outcomes:?}");
}

pub async fn browser_sessions_slide_until_idle_or_absolute_expiry<S: Store>(store: &S) {
    let user_id = stored_user(store, "browser").await;
    let session = browser_session(user_id, Duration::minutes(30), Duration::days(14));
    store
        .create_browser_session(&session)
        .await
        .expect("create");
    let later = now() + Duration::minutes(20);
    let idle_until = later + Duration::minutes(30);
    let (found, user) = store
        .touch_browser_session(&session.digest, later, idle_until)
        .await
        .expect("touch")
        .expect("active");
    assert_eq!(user.id, user_id);
    assert_eq!(
        found,
        BrowserSession {
            idle_expires_at: idle_until,
            ..session.clone()
        }
    );
    let after_idle = idle_until + Duration::seconds(1);
    let gone = store
        .touch_browser_session(
            &session.digest,
            after_idle,
            after_idle + Duration::minutes(30),
        )
        .await
        .expect("touch");
    assert!(gone.is_none(), "idle too long");
    let short = BrowserSession {
        digest: digest("short"),
        ..browser_session(user_id, Duration::days(1), Duration::seconds(-1))
    };
    store.create_browser_session(&short).await.expect("create");
    let over = store
        .touch_browser_session(&short.digest, now(), now() + Duration::days(1))
        .await
        .expect("touch");
    assert!(over.is_none(), "past the absolute lifetime");
}

pub async fn ending_a_browser_session_forgets_it<S: Store>(store: &S) {
    let user_id = stored_user(store, "leaver").await;
    let session = browser_session(user_id, Duration::hours(1), Duration::days(1));
    store
        .create_browser_session(&session)
        .await
        .expect("create");
    assert!(store
        .end_browser_session(&session.digest)
        .await
        .expect("end"));
    assert!(!store
        .end_browser_session(&session.digest)
        .await
        .expect("end again"));
    let found = store
        .touch_browser_session(&session.digest, now(), now() + Duration::hours(1))
        .await
        .expect("touch");
    assert!(found.is_none());
}

pub async fn browser_sessions_and_consent_need_a_user_and_go_with_it<S: Store>(store: &S) {
    let stranger = browser_session(Uuid::now_v7(), Duration::hours(1), Duration::days(1));
    assert!(matches!(
        store.create_browser_session(&stranger).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .save_consent(Uuid::now_v7(), "webapp", "openid", now())
            .await,
        Err(StoreError::NotFound)
    ));
    let user_id = stored_user(store, "deleted").await;
    let session = browser_session(user_id, Duration::hours(1), Duration::days(1));
    store
        .create_browser_session(&session)
        .await
        .expect("create");
    store
        .save_consent(user_id, "webapp", "openid", now())
        .await
        .expect("consent");
    assert!(store.delete_user(user_id).await.expect("delete user"));
    let found = store
        .touch_browser_session(&session.digest, now(), now() + Duration::hours(1))
        .await
        .expect("touch");
    assert!(found.is_none());
    assert_eq!(
        store.find_consent(user_id, "webapp").await.expect("find"),
        None
    );
}

pub async fn consent_is_kept_per_user_and_client_and_replaced<S: Store>(store: &S) {
    let alice = stored_user(store, "alice").await;
    let bob = stored_user(store, "bob").await;
    store
        .save_consent(alice, "webapp", "openid", now())
        .await
        .expect("save");
    assert_eq!(
        store.find_consent(alice, "webapp").await.expect("find"),
        Some("openid".into())
    );
    assert_eq!(
        store.find_consent(alice, "other").await.expect("find"),
        None
    );
    assert_eq!(store.find_consent(bob, "webapp").await.expect("find"), None);
    store
        .save_consent(alice, "webapp", "email openid", now())
        .await
        .expect("replace");
    assert_eq!(
        store.find_consent(alice, "webapp").await.expect("find"),
        Some("email openid".into())
    );
}

pub async fn withdrawn_consent_is_forgotten_and_ends_that_clients_sessions<S: Store>(store: &S) {
    let alice = stored_user(store, "withdraws").await;
    let bob = stored_user(store, "keeps").await;
    let at = now();
    for (user, client, scope) in [
        (alice, "webapp", "openid"),
        (alice, "another", "email openid"),
        (bob, "webapp", "openid"),
    ] {
        store
            .save_consent(user, client, scope, at)
            .await
            .expect("save");
    }
    let listed = store.list_consents(alice).await.expect("list");
    let clients: Vec<&str> = listed.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(clients, ["another", "webapp"], "by client id, alice's only");
    assert_eq!(listed[0].scope, "email openid");
    assert!((listed[0].granted_at - at).num_milliseconds().abs() <= 1);

    let webapp = session_of_client(store, alice, None, "webapp", "webapp").await;
    let ended_before = session_of_client(store, alice, None, "webapp", "ended").await;
    assert!(store
        .revoke_session(ended_before.id, now())
        .await
        .expect("revoke"));
    let another = session_of_client(store, alice, None, "another", "another").await;
    let bobs = session_of_client(store, bob, None, "webapp", "bob").await;

    let revoked = store
        .revoke_consent(alice, "webapp", now())
        .await
        .expect("withdraw");
    assert_eq!(revoked, Some(1), "the one active session of that client");
    assert_eq!(
        store.find_consent(alice, "webapp").await.expect("find"),
        None
    );
    let left = store.list_consents(alice).await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].client_id, "another");
    assert_eq!(
        store.find_consent(bob, "webapp").await.expect("find"),
        Some("openid".into()),
        "another person's consent stays"
    );
    for (session, active) in [(&webapp, false), (&another, true), (&bobs, true)] {
        let found = store
            .find_active_session(session.id, now())
            .await
            .expect("find");
        assert_eq!(found.is_some(), active, "{}", session.client_id);
    }

    // Nothing remembered: nothing changes, not even the client's sessions.
    let unconsented = session_of_client(store, alice, None, "first-party", "fp").await;
    for client in ["webapp", "first-party"] {
        assert_eq!(
            store
                .revoke_consent(alice, client, now())
                .await
                .expect("again"),
            None
        );
    }
    assert!(store
        .find_active_session(unconsented.id, now())
        .await
        .expect("find")
        .is_some());
}

pub async fn purging_flows_removes_only_what_expired<S: Store>(store: &S) {
    let user_id = stored_user(store, "purged").await;
    let live_request = pending(Duration::minutes(10));
    let old_request = pending(Duration::seconds(-5));
    for request in [&live_request, &old_request] {
        store
            .insert_authorization_request(request)
            .await
            .expect("insert request");
    }
    let live_code = code(user_id, Duration::seconds(60));
    let old_code = AuthorizationCode {
        digest: digest("old code"),
        ..code(user_id, Duration::seconds(-5))
    };
    for c in [&live_code, &old_code] {
        store
            .insert_authorization_code(c)
            .await
            .expect("insert code");
    }
    let live_browser = browser_session(user_id, Duration::hours(1), Duration::days(1));
    let idle_browser = BrowserSession {
        digest: digest("idle"),
        ..browser_session(user_id, Duration::seconds(-5), Duration::days(1))
    };
    for b in [&live_browser, &idle_browser] {
        store
            .create_browser_session(b)
            .await
            .expect("create browser session");
    }
    let purged = store.purge_flows(now()).await.expect("purge");
    assert_eq!(purged, 3);
    assert!(store
        .find_authorization_request(live_request.id, now())
        .await
        .expect("find")
        .is_some());
    assert!(!store
        .delete_authorization_request(old_request.id)
        .await
        .expect("delete"));
    assert!(matches!(
        store
            .redeem_authorization_code(&live_code.digest, now())
            .await
            .expect("redeem"),
        CodeRedemption::Redeemed(_)
    ));
    assert!(!store
        .end_browser_session(&idle_browser.digest)
        .await
        .expect("end"));
    assert!(store
        .end_browser_session(&live_browser.digest)
        .await
        .expect("end"));
}

/// A session of `user_id` started by the browser sign-in `browser` (if any).
async fn session_from<S: Store>(
    store: &S,
    user_id: Uuid,
    browser: Option<Uuid>,
    seed: &str,
) -> auth_core::Session {
    session_of_client(store, user_id, browser, "webapp", seed).await
}

async fn session_of_client<S: Store>(
    store: &S,
    user_id: Uuid,
    browser: Option<Uuid>,
    client_id: &str,
    seed: &str,
) -> auth_core::Session {
    let at = now();
    let first = crate::sessions::token(seed, at, Duration::days(1));
    let session = auth_core::Session {
        id: Uuid::now_v7(),
        user_id,
        created_at: at,
        expires_at: first.expires_at,
        revoked_at: None,
        scope: Some("openid".into()),
        client_id: String::new(),
        auth_time: Some(at),
        amr: Some("pwd".into()),
        browser_session_id: browser,
    };
    let session = auth_core::Session {
        client_id: client_id.into(),
        ..session
    };
    store
        .create_session(&session, &first)
        .await
        .expect("create session");
    session
}

pub async fn signing_a_browser_out_ends_the_sessions_it_started<S: Store>(store: &S) {
    let user_id = stored_user(store, "rp-logout").await;
    let browser = browser_session(user_id, Duration::hours(1), Duration::days(1));
    store
        .create_browser_session(&browser)
        .await
        .expect("create");
    let started = session_from(store, user_id, Some(browser.id), "started").await;
    let also_started = session_from(store, user_id, Some(browser.id), "also").await;
    let elsewhere = session_from(store, user_id, Some(Uuid::now_v7()), "elsewhere").await;
    let password_grant = session_from(store, user_id, None, "password").await;
    assert!(store
        .revoke_session(also_started.id, now())
        .await
        .expect("revoke"));

    let revoked = store
        .sign_out_browser(browser.id, now())
        .await
        .expect("sign out");
    assert_eq!(revoked, 1, "only the active session it started");
    let touched = store
        .touch_browser_session(&browser.digest, now(), now() + Duration::hours(1))
        .await
        .expect("touch");
    assert!(touched.is_none(), "the browser session is gone");
    for (session, active) in [
        (&started, false),
        (&elsewhere, true),
        (&password_grant, true),
    ] {
        let found = store
            .find_active_session(session.id, now())
            .await
            .expect("find");
        assert_eq!(found.is_some(), active, "{:?}", session.browser_session_id);
    }
    assert_eq!(
        store
            .sign_out_browser(browser.id, now())
            .await
            .expect("again"),
        0
    );
}
