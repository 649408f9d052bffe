//! Token lifecycle over HTTP: refresh rotation and reuse detection (strict
//! and with a grace window), revocation, introspection, password change,
//! discovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::{encode, password_form, test_config, Reply, TestApp, PASSWORD};
use poem::http::StatusCode;
use serde_json::{json, Value};

struct Grant {
    access: String,
    refresh: String,
}

fn grant_of(reply: &Reply) -> Grant {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    Grant {
        access: reply.body["access_token"].as_str().unwrap().to_owned(),
        refresh: reply.body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

async fn login(app: &TestApp, username: &str) -> Grant {
    grant_of(
        &app.post_form("/token", &password_form(username, PASSWORD))
            .await,
    )
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Reply {
    app.post_form(
        "/token",
        &format!(
            "grant_type=refresh_token&refresh_token={}",
            encode(refresh_token)
        ),
    )
    .await
}

async fn setup(app: &TestApp, username: &str) -> Grant {
    let reg = app
        .register(username, &format!("{username}@example.org"))
        .await;
    assert_eq!(reg.status, StatusCode::CREATED);
    login(app, username).await
}

fn sid(access: &str) -> String {
    let payload = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

fn assert_invalid_grant(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.body["error"], "invalid_grant", "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

fn grace(seconds: u64) -> TestApp {
    let mut config = test_config();
    config.tokens.refresh_reuse_grace = Duration::from_secs(seconds);
    TestApp::with_config(config)
}

#[tokio::test]
async fn refresh_rotates_and_keeps_the_session() {
    let app = TestApp::new();
    let first = setup(&app, "rotor").await;
    let second = grant_of(&refresh(&app, &first.refresh).await);
    assert_ne!(
        second.refresh, first.refresh,
        "a new refresh token each time"
    );
    assert_ne!(second.access, first.access);
    assert_eq!(sid(&second.access), sid(&first.access), "same session");
    assert_eq!(
        app.get("/users/me", Some(&second.access)).await.status,
        StatusCode::OK
    );
    let third = grant_of(&refresh(&app, &second.refresh).await);
    assert_eq!(sid(&third.access), sid(&first.access));
}

#[tokio::test]
async fn reusing_a_used_refresh_token_revokes_the_whole_session() {
    let app = TestApp::new();
    let first = setup(&app, "victim").await;
    let other_session = login(&app, "victim").await;
    let second = grant_of(&refresh(&app, &first.refresh).await);

    // An attacker replays the stolen, already-used token.
    assert_invalid_grant(&refresh(&app, &first.refresh).await);
    // The family is gone: the newest refresh token and every access token of it.
    assert_invalid_grant(&refresh(&app, &second.refresh).await);
    for access in [&first.access, &second.access] {
        let me = app.get("/users/me", Some(access)).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            me.header("www-authenticate"),
            Some(r#"Bearer realm="tessera", error="invalid_token""#)
        );
    }
    // Another login of the same user is a different session and survives.
    assert_eq!(
        app.get("/users/me", Some(&other_session.access))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        refresh(&app, &other_session.refresh).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_refresh_tokens_are_invalid_grant() {
    let app = TestApp::new();
    assert_invalid_grant(&refresh(&app, "not-a-token").await);
    let missing = app.post_form("/token", "grant_type=refresh_token").await;
    assert_eq!(missing.body["error"], "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strict_mode_concurrent_refreshes_have_exactly_one_success() {
    let app = Arc::new(TestApp::new());
    let first = setup(&app, "tabs").await;
    let replies = futures::future::join_all((0..2).map(|_| {
        let app = Arc::clone(&app);
        let token = first.refresh.clone();
        tokio::spawn(async move { refresh(&app, &token).await })
    }))
    .await;
    let ok = replies
        .iter()
        .filter(|r| r.as_ref().unwrap().status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{replies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grace_window_gives_concurrent_tabs_the_same_successor() {
    let app = Arc::new(grace(10));
    let first = setup(&app, "graceful").await;
    let replies = futures::future::join_all((0..4).map(|_| {
        let app = Arc::clone(&app);
        let token = first.refresh.clone();
        tokio::spawn(async move { refresh(&app, &token).await })
    }))
    .await;
    let grants: Vec<Grant> = replies
        .iter()
        .map(|r| grant_of(r.as_ref().unwrap()))
        .collect();
    for grant in &grants {
        assert_eq!(
            grant.refresh, grants[0].refresh,
            "one rotation, one successor"
        );
        assert_eq!(sid(&grant.access), sid(&first.access));
        assert_eq!(
            app.get("/users/me", Some(&grant.access)).await.status,
            StatusCode::OK
        );
    }
    // The successor works as usual.
    assert_eq!(
        refresh(&app, &grants[0].refresh).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn after_the_grace_window_reuse_revokes_as_in_strict_mode() {
    let app = grace(1);
    let first = setup(&app, "late").await;
    let second = grant_of(&refresh(&app, &first.refresh).await);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_invalid_grant(&refresh(&app, &first.refresh).await);
    assert_invalid_grant(&refresh(&app, &second.refresh).await);
    assert_eq!(
        app.get("/users/me", Some(&second.access)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn revoking_either_token_ends_the_session_at_once() {
    for (hint, use_refresh) in [
        ("", true),
        ("&token_type_hint=refresh_token", true),
        ("", false),
        ("&token_type_hint=access_token", false),
        ("&token_type_hint=refresh_token", false),
    ] {
        let app = TestApp::new();
        let grant = setup(&app, "revoker").await;
        let other = login(&app, "revoker").await;
        let token = if use_refresh {
            &grant.refresh
        } else {
            &grant.access
        };
        let reply = app
            .post_form("/revoke", &format!("token={}{hint}", encode(token)))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert_eq!(reply.header("pragma"), Some("no-cache"));
        assert_eq!(
            app.get("/users/me", Some(&grant.access)).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_invalid_grant(&refresh(&app, &grant.refresh).await);
        assert_eq!(
            app.get("/users/me", Some(&other.access)).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn revoke_answers_200_for_unknown_tokens_and_400_without_one() {
    let app = TestApp::new();
    assert_eq!(
        app.post_form("/revoke", "token=whatever").await.status,
        StatusCode::OK
    );
    let missing = app.post_form("/revoke", "token=").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body["error"], "invalid_request");
    assert_eq!(missing.header("cache-control"), Some("no-store"));
    let json = app.post_json("/revoke", r#"{"token":"x"}"#).await;
    assert_eq!(json.body["error"], "invalid_request");
}

#[tokio::test]
async fn introspection_reports_active_tokens_and_nothing_else() {
    let app = TestApp::new();
    let grant = setup(&app, "inspector").await;
    let me = app.get("/users/me", Some(&grant.access)).await;

    let access = app
        .post_form("/introspect", &format!("token={}", encode(&grant.access)))
        .await;
    assert_eq!(access.status, StatusCode::OK);
    assert_eq!(access.header("cache-control"), Some("no-store"));
    assert_eq!(access.body["active"], true);
    assert_eq!(access.body["sub"], me.body["id"]);
    assert_eq!(access.body["username"], "inspector");
    assert_eq!(access.body["token_type"], "bearer");
    assert_eq!(access.body["iss"], "http://127.0.0.1:8080");
    for claim in ["exp", "iat", "client_id"] {
        assert!(access.body.get(claim).is_some(), "{claim}");
    }

    let refresh_facts = app
        .post_form("/introspect", &format!("token={}", encode(&grant.refresh)))
        .await;
    assert_eq!(refresh_facts.body["active"], true);
    assert_eq!(refresh_facts.body["token_type"], "refresh_token");
    assert_eq!(refresh_facts.body["sub"], me.body["id"]);

    // Once used, the refresh token is inactive: exactly {"active": false}.
    let next = grant_of(&refresh(&app, &grant.refresh).await);
    let used = app
        .post_form("/introspect", &format!("token={}", encode(&grant.refresh)))
        .await;
    assert_eq!(used.body, json!({"active": false}));
    for junk in ["junk", "eyJhbGciOiJub25lIn0.e30."] {
        let reply = app
            .post_form("/introspect", &format!("token={}", encode(junk)))
            .await;
        assert_eq!(reply.body, json!({"active": false}));
    }
    // After revocation, the session's access token is inactive too.
    app.post_form("/revoke", &format!("token={}", encode(&next.refresh)))
        .await;
    let revoked = app
        .post_form("/introspect", &format!("token={}", encode(&next.access)))
        .await;
    assert_eq!(revoked.body, json!({"active": false}));
    let missing = app.post_form("/introspect", "").await;
    assert_eq!(missing.body["error"], "invalid_request");
}

async fn change_password(app: &TestApp, access: &str, current: &str, new: &str) -> Reply {
    app.send(
        poem::Request::builder()
            .method(poem::http::Method::POST)
            .uri_str("/users/me/password")
            .content_type("application/json")
            .header("authorization", format!("Bearer {access}"))
            .body(json!({"current_password": current, "new_password": new}).to_string()),
    )
    .await
}

#[tokio::test]
async fn password_change_keeps_this_session_and_ends_the_others() {
    let app = TestApp::new();
    let this = setup(&app, "changer").await;
    let other = login(&app, "changer").await;
    let new_password = "a brand new passphrase";

    let reply = change_password(&app, &this.access, PASSWORD, new_password).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);

    assert_eq!(
        app.get("/users/me", Some(&this.access)).await.status,
        StatusCode::OK
    );
    assert_eq!(refresh(&app, &this.refresh).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/users/me", Some(&other.access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_invalid_grant(&refresh(&app, &other.refresh).await);
    assert_invalid_grant(
        &app.post_form("/token", &password_form("changer", PASSWORD))
            .await,
    );
    grant_of(
        &app.post_form("/token", &password_form("changer", new_password))
            .await,
    );
}

#[tokio::test]
async fn password_change_errors() {
    let app = TestApp::new();
    let grant = setup(&app, "careful").await;
    let wrong = change_password(&app, &grant.access, "not my password", "another good one").await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.text);
    assert_eq!(
        wrong.header("content-type"),
        Some("application/problem+json")
    );
    for weak in ["short", "password", "careful"] {
        let reply = change_password(&app, &grant.access, PASSWORD, weak).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{weak}");
        assert_eq!(reply.body["errors"][0]["field"], "new_password");
    }
    let no_token = app
        .post_json(
            "/users/me/password",
            r#"{"current_password":"x","new_password":"y"}"#,
        )
        .await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    let missing = app
        .send(
            poem::Request::builder()
                .method(poem::http::Method::POST)
                .uri_str("/users/me/password")
                .content_type("application/json")
                .header("authorization", format!("Bearer {}", grant.access))
                .body("{}"),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing changed: the original password still logs in.
    grant_of(
        &app.post_form("/token", &password_form("careful", PASSWORD))
            .await,
    );
}

#[tokio::test]
async fn disabled_users_cannot_refresh() {
    use auth_core::UserStore;
    let app = TestApp::new();
    let grant = setup(&app, "frozen").await;
    let me = app.get("/users/me", Some(&grant.access)).await;
    let id = uuid::Uuid::parse_str(me.body["id"].as_str().unwrap()).unwrap();
    app.state
        .service
        .store()
        .set_disabled(id, true)
        .await
        .unwrap();
    assert_invalid_grant(&refresh(&app, &grant.refresh).await);
}

#[tokio::test]
async fn discovery_documents_describe_the_server() {
    let app = TestApp::new();
    let meta = app
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(meta.status, StatusCode::OK);
    let issuer = "http://127.0.0.1:8080";
    assert_eq!(meta.body["issuer"], issuer);
    assert_eq!(meta.body["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(meta.body["revocation_endpoint"], format!("{issuer}/revoke"));
    assert_eq!(
        meta.body["introspection_endpoint"],
        format!("{issuer}/introspect")
    );
    assert_eq!(
        meta.body["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json")
    );
    assert_eq!(
        meta.body["authorization_endpoint"],
        format!("{issuer}/authorize")
    );
    assert_eq!(
        meta.body["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "password"
        ])
    );
    assert_eq!(
        meta.body["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(meta.body["response_types_supported"], json!(["code"]));
    // The HS256 secret is never published; the ID-token keys always are.
    let jwks = app.get("/.well-known/jwks.json", None).await;
    let keys = jwks.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "the test harness's three ID-token keys");
    for key in keys {
        assert!(key["kid"].as_str().unwrap().ends_with("-test"), "{key}");
        assert_ne!(key["kty"], "oct", "no symmetric key: {key}");
        assert!(key.get("k").is_none() && key.get("d").is_none(), "{key}");
    }
}

#[tokio::test]
async fn every_asymmetric_algorithm_publishes_a_jwk_that_verifies_its_tokens() {
    for alg in ["EdDSA", "ES256", "RS256"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config();
        config.tokens.algorithm = alg.parse().unwrap();
        config.data_dir = dir.path().to_owned();
        let app = TestApp::with_config(config);
        let grant = setup(&app, "verifier").await;
        assert_eq!(
            app.get("/users/me", Some(&grant.access)).await.status,
            StatusCode::OK
        );
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(&app.get("/.well-known/jwks.json", None).await.text).unwrap();
        let access_keys = jwks
            .keys
            .iter()
            .filter(|k| {
                !k.common
                    .key_id
                    .as_deref()
                    .unwrap_or_default()
                    .ends_with("-test")
            })
            .count();
        assert_eq!(
            access_keys, 1,
            "{alg}: one access-token key besides the ID-token keys"
        );
        let header = jsonwebtoken::decode_header(&grant.access).unwrap();
        let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&["http://127.0.0.1:8080"]);
        jsonwebtoken::decode::<Value>(
            &grant.access,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(header.alg.to_owned(), alg.parse().unwrap());
    }
}

fn throttled_app(max_failures: u32, lockout_ms: u64) -> TestApp {
    let mut config = test_config();
    config.throttle.max_failures = max_failures;
    config.throttle.lockout = Duration::from_millis(lockout_ms);
    TestApp::with_config(config)
}

#[tokio::test]
async fn repeated_failures_lock_the_account_even_for_the_right_password() {
    let app = throttled_app(3, 1500);
    app.register("guarded", "guarded@example.org").await;
    for _ in 0..3 {
        assert_invalid_grant(
            &app.post_form("/token", &password_form("guarded", "wrong guess"))
                .await,
        );
    }
    // Locked: the right password (by username or by email) gets 429.
    for login in ["guarded", "GUARDED@example.org"] {
        let locked = app
            .post_form("/token", &password_form(login, PASSWORD))
            .await;
        assert_eq!(
            locked.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            locked.text
        );
        assert_eq!(locked.body["error"], "temporarily_unavailable");
        assert_eq!(locked.header("cache-control"), Some("no-store"));
        let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
    }
    tokio::time::sleep(Duration::from_millis(1600)).await;
    login(&app, "guarded").await;
    // A success resets the count: two more failures do not lock.
    for _ in 0..2 {
        assert_invalid_grant(
            &app.post_form("/token", &password_form("guarded", "wrong"))
                .await,
        );
    }
    login(&app, "guarded").await;
}

#[tokio::test]
async fn guessing_at_unknown_accounts_is_throttled_alike() {
    let app = throttled_app(2, 60_000);
    for _ in 0..2 {
        assert_invalid_grant(
            &app.post_form("/token", &password_form("ghost", "guess"))
                .await,
        );
    }
    let locked = app
        .post_form("/token", &password_form("ghost", "guess"))
        .await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
}
