//! `/admin/v1` and the `client_credentials` grant (API.md "Administration
//! API"), in-process against the memory store; every store is covered by
//! the conformance suite and the end-to-end tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_core::{Actor, ClientRegistration, GrantType};
use base64::Engine as _;
use common::{assert_problem, encode, TestApp, PASSWORD};
use poem::http::{Method, StatusCode};
use poem::Request;
use serde_json::{json, Value};

/// A stored confidential client; returns its secret.
async fn add_client(app: &TestApp, id: &str, grants: &[GrantType], scopes: &[&str]) -> String {
    let added = app
        .state
        .service
        .add_client(
            &Actor::Operator,
            &ClientRegistration {
                id: id.into(),
                grant_types: grants.to_vec(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                ..ClientRegistration::default()
            },
            false,
        )
        .await
        .unwrap();
    added.secret.unwrap().expose().to_owned()
}

fn basic(id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", encode(id), encode(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

async fn client_token_reply(
    app: &TestApp,
    id: &str,
    secret: &str,
    scope: Option<&str>,
) -> common::Reply {
    let mut body = "grant_type=client_credentials".to_owned();
    if let Some(scope) = scope {
        body.push_str(&format!("&scope={}", encode(scope)));
    }
    app.send(
        Request::builder()
            .method(Method::POST)
            .uri_str("/token")
            .header("authorization", basic(id, secret))
            .content_type("application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

/// An administration client's access token.
async fn admin_token(app: &TestApp) -> String {
    let secret = add_client(app, "ops", &[GrantType::ClientCredentials], &["admin"]).await;
    let reply = client_token_reply(app, "ops", &secret, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["access_token"].as_str().unwrap().to_owned()
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> common::Reply {
    let mut req = Request::builder().method(method).uri_str(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    app.send(match body {
        Some(body) => req.content_type("application/json").body(body.to_string()),
        None => req.finish(),
    })
    .await
}

fn usernames(reply: &common::Reply) -> Vec<String> {
    reply.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", reply.text))
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

/// Every administration route, with a path that exists in shape.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/v1/users"),
    ("POST", "/admin/v1/users"),
    (
        "GET",
        "/admin/v1/users/0190aa00-0000-7000-8000-000000000000",
    ),
    (
        "PATCH",
        "/admin/v1/users/0190aa00-0000-7000-8000-000000000000",
    ),
    (
        "DELETE",
        "/admin/v1/users/0190aa00-0000-7000-8000-000000000000",
    ),
    (
        "POST",
        "/admin/v1/users/0190aa00-0000-7000-8000-000000000000/disable",
    ),
    (
        "POST",
        "/admin/v1/users/0190aa00-0000-7000-8000-000000000000/enable",
    ),
    (
        "POST",
        "/admin/v1/users/0190aa00-0000-7000-8000-000000000000/password",
    ),
    (
        "POST",
        "/admin/v1/users/0190aa00-0000-7000-8000-000000000000/reset-factors",
    ),
    (
        "GET",
        "/admin/v1/users/0190aa00-0000-7000-8000-000000000000/sessions",
    ),
    (
        "DELETE",
        "/admin/v1/sessions/0190aa00-0000-7000-8000-000000000000",
    ),
    ("GET", "/admin/v1/clients"),
    ("POST", "/admin/v1/clients"),
    ("GET", "/admin/v1/clients/ops"),
    ("PATCH", "/admin/v1/clients/ops"),
    ("DELETE", "/admin/v1/clients/ops"),
    ("POST", "/admin/v1/clients/ops/rotate-secret"),
    ("GET", "/admin/v1/audit"),
];

// ------------------------------------------------------------ access

#[tokio::test]
async fn every_admin_route_is_401_without_a_token_and_403_without_the_scope() {
    let app = TestApp::new();
    let user_token = app.user_with_token("alice").await;
    let plain_secret = add_client(
        &app,
        "worker",
        &[GrantType::ClientCredentials],
        &["reports"],
    )
    .await;
    let worker = client_token_reply(&app, "worker", &plain_secret, None).await;
    assert_eq!(worker.status, StatusCode::OK, "{}", worker.text);
    assert_eq!(worker.body["scope"], "reports");
    let worker_token = worker.body["access_token"].as_str().unwrap().to_owned();
    for (method, path) in ROUTES {
        let method: Method = method.parse().unwrap();
        let body = (method == Method::POST || method == Method::PATCH).then(|| json!({}));
        let none = call(&app, method.clone(), path, None, body.clone()).await;
        assert_problem(&none, StatusCode::UNAUTHORIZED);
        assert_eq!(
            none.header("www-authenticate"),
            Some(r#"Bearer realm="tessera""#),
            "{method} {path}"
        );
        let bad = call(
            &app,
            method.clone(),
            path,
            Some("not-a-token"),
            body.clone(),
        )
        .await;
        assert_problem(&bad, StatusCode::UNAUTHORIZED);
        for (who, token) in [
            ("a user", &user_token),
            ("a client without admin", &worker_token),
        ] {
            let reply = call(&app, method.clone(), path, Some(token), body.clone()).await;
            assert_problem(&reply, StatusCode::FORBIDDEN);
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|h| h.contains(r#"error="insufficient_scope""#)
                        && h.contains(r#"scope="admin""#)),
                "{who} at {method} {path}: {:?}",
                reply.headers
            );
        }
    }
    // Nothing was changed by any of the refused calls.
    assert_eq!(app.state.service.all_clients().await.unwrap().len(), 1);
    assert!(app.state.service.find_user("alice").await.is_ok());
}

#[tokio::test]
async fn client_credentials_gives_a_client_its_own_token_and_nothing_more() {
    let app = TestApp::new();
    let secret = add_client(
        &app,
        "ops",
        &[GrantType::ClientCredentials],
        &["admin", "openid"],
    )
    .await;
    let reply = client_token_reply(&app, "ops", &secret, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["token_type"], "bearer");
    assert_eq!(
        reply.body["scope"], "admin",
        "user scopes are not a client's own"
    );
    assert!(
        reply.body.get("refresh_token").is_none(),
        "RFC 6749 §4.4.3: no refresh token"
    );
    assert!(reply.body.get("id_token").is_none());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let token = reply.body["access_token"].as_str().unwrap().to_owned();

    // Introspection: active, the client is the subject, no username.
    let introspected = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri_str("/introspect")
                .header("authorization", basic("ops", &secret))
                .content_type("application/x-www-form-urlencoded")
                .body(format!("token={token}")),
        )
        .await;
    assert_eq!(introspected.body["active"], true, "{}", introspected.text);
    assert_eq!(introspected.body["sub"], "ops");
    assert_eq!(introspected.body["client_id"], "ops");
    assert!(introspected.body.get("username").is_none());
    // A client token is nobody's account.
    let me = app.get("/users/me", Some(&token)).await;
    assert!(me.status.is_client_error(), "{}", me.text);

    // Wrong secret, unknown scope, public client, client not allowed the grant.
    let wrong =
        client_token_reply(&app, "ops", "wrong-secret-wrong-secret-wrong-secret", None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    assert_eq!(wrong.body["error"], "invalid_client");
    let scope = client_token_reply(&app, "ops", &secret, Some("admin payroll")).await;
    assert_eq!(scope.status, StatusCode::BAD_REQUEST, "{}", scope.text);
    assert_eq!(scope.body["error"], "invalid_scope");
    let web_secret = add_client(&app, "web", &[GrantType::RefreshToken], &["openid"]).await;
    let not_allowed = client_token_reply(&app, "web", &web_secret, None).await;
    assert_eq!(
        not_allowed.body["error"], "unauthorized_client",
        "{}",
        not_allowed.text
    );
    let public = app
        .post_form("/token", "grant_type=client_credentials&client_id=tessera")
        .await;
    assert_eq!(public.status, StatusCode::BAD_REQUEST, "{}", public.text);
    assert_eq!(
        public.body["error"], "unauthorized_client",
        "{}",
        public.text
    );

    // Discovery names the grant.
    let metadata = app
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert!(metadata.body["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("client_credentials")));

    // Deleting the client ends its tokens at once.
    app.state
        .service
        .delete_client(&Actor::Operator, "web")
        .await
        .unwrap();
    app.state
        .service
        .update_client(&Actor::Operator, "ops", |r| {
            r.grant_types = vec![GrantType::RefreshToken]
        })
        .await
        .unwrap();
    let after = call(&app, Method::GET, "/admin/v1/users", Some(&token), None).await;
    assert_problem(&after, StatusCode::FORBIDDEN);
}

// ------------------------------------------------------------ users

#[tokio::test]
async fn an_operator_manages_an_account_through_its_whole_life() {
    let app = TestApp::new();
    let admin = admin_token(&app).await;
    let t = Some(admin.as_str());

    let created = call(
        &app,
        Method::POST,
        "/admin/v1/users",
        t,
        Some(json!({"username": "Carol", "email": "carol@example.org", "password": PASSWORD})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/admin/v1/users/{id}").as_str())
    );
    assert_eq!(created.body["disabled"], false);
    assert!(created.body.get("password_hash").is_none() && created.body.get("password").is_none());
    let user_path = format!("/admin/v1/users/{id}");

    let fetched = call(&app, Method::GET, &user_path, t, None).await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.text);
    assert_eq!(fetched.body["username"], "Carol");

    // Her own sign-in makes a session the operator can see and end.
    let token = app.login("carol", PASSWORD).await;
    let sessions = call(&app, Method::GET, &format!("{user_path}/sessions"), t, None).await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.text);
    let items = sessions.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", sessions.text);
    assert_eq!(items[0]["kind"], "token");
    assert!(sessions.body["next_cursor"].is_null());
    let claims = decode_claims(&token);
    assert_eq!(
        items[0]["id"], claims["sid"],
        "a session's id is the sid of its tokens"
    );
    let sid = items[0]["id"].as_str().unwrap().to_owned();
    let revoked = call(
        &app,
        Method::DELETE,
        &format!("/admin/v1/sessions/{sid}"),
        t,
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = call(
        &app,
        Method::DELETE,
        &format!("/admin/v1/sessions/{sid}"),
        t,
        None,
    )
    .await;
    assert_problem(&again, StatusCode::NOT_FOUND);

    // Update: a new address is unverified unless said otherwise.
    let patched = call(
        &app,
        Method::PATCH,
        &user_path,
        t,
        Some(json!({"email": "c@example.org"})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        (
            patched.body["email"].clone(),
            patched.body["email_verified"].clone()
        ),
        (json!("c@example.org"), json!(false))
    );
    let verified = call(
        &app,
        Method::PATCH,
        &user_path,
        t,
        Some(json!({"email_verified": true, "disabled": null})),
    )
    .await;
    assert_eq!(verified.body["email_verified"], true, "{}", verified.text);
    assert_eq!(verified.body["email"], "c@example.org");

    // Disable ends every session and stops sign-in; enable restores it.
    let token = app.login("carol", PASSWORD).await;
    let disabled = call(&app, Method::POST, &format!("{user_path}/disable"), t, None).await;
    assert_eq!(disabled.body["disabled"], true, "{}", disabled.text);
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refused = app
        .post_form("/token", &common::password_form("carol", PASSWORD))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let enabled = call(&app, Method::POST, &format!("{user_path}/enable"), t, None).await;
    assert_eq!(enabled.body["disabled"], false, "{}", enabled.text);
    let via_patch = call(
        &app,
        Method::PATCH,
        &user_path,
        t,
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(via_patch.body["disabled"], true, "{}", via_patch.text);
    call(
        &app,
        Method::PATCH,
        &user_path,
        t,
        Some(json!({"disabled": false})),
    )
    .await;

    // A new password: the policy applies, then the old one stops working.
    let weak = call(
        &app,
        Method::POST,
        &format!("{user_path}/password"),
        t,
        Some(json!({"password": "short"})),
    )
    .await;
    assert_problem(&weak, StatusCode::UNPROCESSABLE_ENTITY);
    let set = call(
        &app,
        Method::POST,
        &format!("{user_path}/password"),
        t,
        Some(json!({"password": "a whole new passphrase"})),
    )
    .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.text);
    assert_eq!(
        app.post_form("/token", &common::password_form("carol", PASSWORD))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    app.login("carol", "a whole new passphrase").await;

    let reset = call(
        &app,
        Method::POST,
        &format!("{user_path}/reset-factors"),
        t,
        None,
    )
    .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.text);
    assert_eq!(reset.body["removed"], 0);

    let deleted = call(&app, Method::DELETE, &user_path, t, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    for (method, path) in [
        (Method::GET, user_path.clone()),
        (Method::DELETE, user_path.clone()),
        (Method::POST, format!("{user_path}/disable")),
        (Method::GET, format!("{user_path}/sessions")),
    ] {
        assert_problem(
            &call(&app, method, &path, t, None).await,
            StatusCode::NOT_FOUND,
        );
    }
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_changes_nothing() {
    let app = TestApp::new();
    let admin = admin_token(&app).await;
    let t = Some(admin.as_str());
    app.register("dave", "dave@example.org").await;
    app.register("erin", "erin@example.org").await;
    let dave = app.state.service.find_user("dave").await.unwrap();
    let dave_path = format!("/admin/v1/users/{}", dave.id);

    let missing = call(
        &app,
        Method::POST,
        "/admin/v1/users",
        t,
        Some(json!({"username": "x"})),
    )
    .await;
    assert_problem(&missing, StatusCode::UNPROCESSABLE_ENTITY);
    let duplicate = call(
        &app,
        Method::POST,
        "/admin/v1/users",
        t,
        Some(json!({"username": "DAVE", "email": "d2@example.org", "password": PASSWORD})),
    )
    .await;
    assert_problem(&duplicate, StatusCode::CONFLICT);
    let taken = call(
        &app,
        Method::PATCH,
        &dave_path,
        t,
        Some(json!({"email": "ERIN@example.org"})),
    )
    .await;
    assert_problem(&taken, StatusCode::CONFLICT);
    let invalid = call(
        &app,
        Method::PATCH,
        &dave_path,
        t,
        Some(json!({"email": "not an address"})),
    )
    .await;
    assert_problem(&invalid, StatusCode::UNPROCESSABLE_ENTITY);
    let mistyped = call(
        &app,
        Method::PATCH,
        &dave_path,
        t,
        Some(json!({"email_verified": "yes", "disabled": 1})),
    )
    .await;
    assert_problem(&mistyped, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = mistyped.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["email_verified", "disabled"],
        "every mistyped field is named"
    );
    let not_json = call(&app, Method::PATCH, &dave_path, t, None).await;
    assert_problem(&not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let unchanged = app.state.service.find_user("dave").await.unwrap();
    assert_eq!(unchanged, dave, "nothing changed");

    assert_problem(
        &call(&app, Method::GET, "/admin/v1/users/not-a-uuid", t, None).await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &call(&app, Method::GET, "/admin/v1/users?limit=0", t, None).await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &call(&app, Method::GET, "/admin/v1/users?limit=1001", t, None).await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &call(&app, Method::GET, "/admin/v1/users?cursor=%%%", t, None).await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &call(
            &app,
            Method::GET,
            "/admin/v1/audit?cursor=bm90LWEtdXVpZA",
            t,
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &call(
            &app,
            Method::GET,
            "/admin/v1/audit?since=yesterday",
            t,
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
}

#[tokio::test]
async fn the_user_list_pages_by_username_and_searches_by_prefix() {
    let app = TestApp::new();
    let admin = admin_token(&app).await;
    let t = Some(admin.as_str());
    for name in ["mike", "Lima", "kilo", "juliet", "india"] {
        app.register(name, &format!("{name}@example.org")).await;
    }
    app.register("zulu", "MIKE.backup@example.org").await;
    let mut seen = Vec::new();
    let mut path = "/admin/v1/users?limit=2".to_owned();
    loop {
        let page = call(&app, Method::GET, &path, t, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert!(usernames(&page).len() <= 2);
        seen.extend(usernames(&page));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/v1/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["india", "juliet", "kilo", "Lima", "mike", "zulu"]);
    let search = call(&app, Method::GET, "/admin/v1/users?q=Mi", t, None).await;
    assert_eq!(
        usernames(&search),
        ["mike", "zulu"],
        "username or email prefix, any case"
    );
    assert!(search.body["next_cursor"].is_null());
    let none = call(&app, Method::GET, "/admin/v1/users?q=nobody", t, None).await;
    assert_eq!(none.body["items"], json!([]));
}

// ------------------------------------------------------------ clients

#[tokio::test]
async fn an_operator_manages_clients_and_their_secrets() {
    let mut config = common::test_config();
    config.clients = vec![ClientRegistration {
        id: "configured".into(),
        redirect_uris: vec!["https://app.example/cb".into()],
        ..ClientRegistration::default()
    }];
    let app = TestApp::with_config(config);
    let admin = admin_token(&app).await;
    let t = Some(admin.as_str());

    let created = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        t,
        Some(json!({"id": "billing", "name": "Billing", "grant_types": ["client_credentials"], "scopes": ["invoices"]})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        created.header("location"),
        Some("/admin/v1/clients/billing")
    );
    assert_eq!(created.body["public"], false);
    assert_eq!(created.body["source"], "store");
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        client_token_reply(&app, "billing", &secret, None)
            .await
            .status,
        StatusCode::OK
    );

    let spa = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        t,
        Some(json!({"id": "spa", "public": true, "redirect_uris": ["https://spa.example/cb"]})),
    )
    .await;
    assert_eq!(spa.status, StatusCode::CREATED, "{}", spa.text);
    assert!(
        spa.body.get("secret").is_none(),
        "a public client has no secret"
    );

    let listed = call(&app, Method::GET, "/admin/v1/clients", t, None).await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["billing", "configured", "ops", "spa"],
        "{}",
        listed.text
    );
    assert!(listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c.get("secret").is_none()));

    let fetched = call(&app, Method::GET, "/admin/v1/clients/billing", t, None).await;
    assert_eq!(fetched.body["name"], "Billing");
    assert!(fetched.body.get("secret").is_none(), "never shown again");
    let patched = call(
        &app,
        Method::PATCH,
        "/admin/v1/clients/billing",
        t,
        Some(json!({"name": "Invoices", "scopes": ["invoices", "reports"]})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["name"], "Invoices");
    assert_eq!(patched.body["scopes"], json!(["invoices", "reports"]));
    assert_eq!(
        patched.body["grant_types"],
        json!(["client_credentials"]),
        "absent fields stay"
    );

    let rotated = call(
        &app,
        Method::POST,
        "/admin/v1/clients/billing/rotate-secret",
        t,
        None,
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new_secret = rotated.body["secret"].as_str().unwrap();
    assert_eq!(
        client_token_reply(&app, "billing", &secret, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client_token_reply(&app, "billing", new_secret, None)
            .await
            .status,
        StatusCode::OK
    );

    // Validation, conflicts, configured clients, public rotation.
    let bad = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        t,
        Some(json!({"id": "has space", "grant_types": ["authorization_code"]})),
    )
    .await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown_grant = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        t,
        Some(json!({"id": "x", "grant_types": ["implicit"]})),
    )
    .await;
    assert_problem(&unknown_grant, StatusCode::UNPROCESSABLE_ENTITY);
    let no_id = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        t,
        Some(json!({"name": "nameless"})),
    )
    .await;
    assert_problem(&no_id, StatusCode::UNPROCESSABLE_ENTITY);
    let taken = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        t,
        Some(json!({"id": "billing", "grant_types": ["client_credentials"]})),
    )
    .await;
    assert_problem(&taken, StatusCode::CONFLICT);
    let configured = call(
        &app,
        Method::PATCH,
        "/admin/v1/clients/configured",
        t,
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_problem(&configured, StatusCode::CONFLICT);
    let public_rotation = call(
        &app,
        Method::POST,
        "/admin/v1/clients/spa/rotate-secret",
        t,
        None,
    )
    .await;
    assert_problem(&public_rotation, StatusCode::UNPROCESSABLE_ENTITY);
    let broken_patch = call(
        &app,
        Method::PATCH,
        "/admin/v1/clients/spa",
        t,
        Some(json!({"redirect_uris": []})),
    )
    .await;
    assert_problem(&broken_patch, StatusCode::UNPROCESSABLE_ENTITY);

    let deleted = call(&app, Method::DELETE, "/admin/v1/clients/billing", t, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_problem(
        &call(&app, Method::GET, "/admin/v1/clients/billing", t, None).await,
        StatusCode::NOT_FOUND,
    );
    // An unknown client id is v1's implicit public client, which may not
    // use this grant: no token either way.
    let gone = client_token_reply(&app, "billing", new_secret, None).await;
    assert_eq!(gone.status, StatusCode::BAD_REQUEST, "{}", gone.text);
    assert_eq!(gone.body["error"], "unauthorized_client");
}

// ------------------------------------------------------------ audit

#[tokio::test]
async fn security_events_land_in_the_audit_log_with_who_what_and_which_request() {
    let app = TestApp::new();
    let admin = admin_token(&app).await;
    let t = Some(admin.as_str());
    app.register("frank", "frank@example.org").await;
    let frank = app.state.service.find_user("frank").await.unwrap();
    let target = format!("user:{}", frank.id);

    // A failed and a good sign-in, an unknown login, an admin action.
    let failed = app
        .post_form("/token", &common::password_form("frank", "wrong password!"))
        .await;
    assert_eq!(failed.status, StatusCode::BAD_REQUEST);
    app.login("frank", PASSWORD).await;
    app.post_form(
        "/token",
        &common::password_form("nobody-here", "whatever it is"),
    )
    .await;
    let disable = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri_str(format!("/admin/v1/users/{}/disable", frank.id))
                .header("authorization", format!("Bearer {admin}"))
                .header("x-request-id", "req-disable-frank")
                .finish(),
        )
        .await;
    assert_eq!(disable.status, StatusCode::OK, "{}", disable.text);

    let on_frank = call(
        &app,
        Method::GET,
        &format!("/admin/v1/audit?target={}", encode(&target)),
        t,
        None,
    )
    .await;
    assert_eq!(on_frank.status, StatusCode::OK, "{}", on_frank.text);
    let events: Vec<(String, String, String)> = on_frank.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let user_actor = format!("user:{}", frank.id);
    assert_eq!(
        events,
        [
            ("anonymous".into(), "user.created".into(), "success".into()),
            ("anonymous".into(), "sign_in".into(), "failure".into()),
            (user_actor, "sign_in".into(), "success".into()),
            (
                "client:ops".into(),
                "user.disabled".into(),
                "success".into()
            ),
        ],
        "oldest first: {}",
        on_frank.text
    );
    let last = &on_frank.body["items"][3];
    assert_eq!(last["request_id"], "req-disable-frank");
    assert!(
        on_frank.text.find(PASSWORD).is_none() && on_frank.text.find("wrong password").is_none()
    );

    // Filters and the cursor.
    let unknown = call(&app, Method::GET, "/admin/v1/audit?action=sign_in", t, None).await;
    let anonymous_failures = unknown.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"].is_null())
        .count();
    assert_eq!(
        anonymous_failures, 1,
        "an unknown login is recorded without what was typed: {}",
        unknown.text
    );
    assert!(!unknown.text.contains("nobody-here"));
    let by_client = call(
        &app,
        Method::GET,
        "/admin/v1/audit?actor=client:ops",
        t,
        None,
    )
    .await;
    let actions: Vec<&str> = by_client.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["token.client_credentials", "user.disabled"],
        "{}",
        by_client.text
    );
    let mut all = Vec::new();
    let mut path = "/admin/v1/audit?limit=2".to_owned();
    loop {
        let page = call(&app, Method::GET, &path, t, None).await;
        all.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/v1/audit?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let whole = call(&app, Method::GET, "/admin/v1/audit", t, None).await;
    let ids: Vec<String> = whole.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all, ids, "pages join up");
    let future = call(
        &app,
        Method::GET,
        "/admin/v1/audit?since=2999-01-01T00:00:00Z",
        t,
        None,
    )
    .await;
    assert_eq!(future.body["items"], json!([]));
    let past = call(
        &app,
        Method::GET,
        "/admin/v1/audit?until=2000-01-01T00:00:00Z",
        t,
        None,
    )
    .await;
    assert_eq!(past.body["items"], json!([]));
}

/// The claims of a JWT, unverified (the server verified it).
fn decode_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sign_ins_leave_fifty_audit_records_on_the_memory_store() {
    let app = std::sync::Arc::new(TestApp::new());
    let admin = admin_token(&app).await;
    app.register("busy", "busy@example.org").await;
    let user = app.state.service.find_user("busy").await.unwrap();
    let logins = futures::future::join_all((0..50).map(|_| {
        let app = std::sync::Arc::clone(&app);
        tokio::spawn(async move {
            app.post_form("/token", &common::password_form("busy", PASSWORD))
                .await
                .status
        })
    }))
    .await;
    assert!(logins
        .iter()
        .all(|s| *s.as_ref().unwrap() == StatusCode::OK));
    let page = call(
        &app,
        Method::GET,
        &format!(
            "/admin/v1/audit?action=sign_in&target=user:{}&limit=1000",
            user.id
        ),
        Some(&admin),
        None,
    )
    .await;
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 50, "{}", page.text);
    assert!(items.iter().all(|e| e["outcome"] == "success"));
}
