//! The HTTP contract (API.md), driven in-process against the memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_core::token::hs256_kid;
use base64::Engine as _;
use common::{assert_problem, encode, password_form, TestApp, PASSWORD, SECRET};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::http::{Method, StatusCode};
use poem::Request;
use serde_json::{json, Value};

const WWW_MISSING: &str = r#"Bearer realm="tessera""#;
const WWW_INVALID: &str = r#"Bearer realm="tessera", error="invalid_token""#;

fn assert_oauth_error(reply: &common::Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.body["error"], code, "{}", reply.text);
    assert!(reply.body["error_description"].is_string());
    assert_no_store(reply);
}

fn assert_no_store(reply: &common::Reply) {
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
}

fn error_fields(reply: &common::Reply) -> Vec<String> {
    reply.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {}", reply.text))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------- register

#[tokio::test]
async fn register_returns_201_with_location_and_the_public_user() {
    let app = TestApp::new();
    let reply = app.register("Alice", "Alice@Example.org").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.header("location"), Some("/users/me"));
    let body = reply.body.as_object().unwrap();
    let mut keys: Vec<_> = body.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["created_at", "email", "email_verified", "id", "username"]
    );
    assert_eq!(
        body["email_verified"], false,
        "not until the link is followed"
    );
    assert_eq!(body["username"], "Alice", "case is kept");
    assert_eq!(body["email"], "Alice@Example.org");
    uuid::Uuid::parse_str(body["id"].as_str().unwrap()).unwrap();
    chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).unwrap();
    assert!(!reply.text.contains(PASSWORD));
    assert!(!reply.text.contains("argon2"));
}

#[tokio::test]
async fn register_conflicts_ignore_case_for_username_and_email() {
    let app = TestApp::new();
    assert_eq!(
        app.register("alice", "a@x.org").await.status,
        StatusCode::CREATED
    );
    let same_name = app.register("Alice", "other@x.org").await;
    assert_problem(&same_name, StatusCode::CONFLICT);
    assert!(same_name.body["detail"]
        .as_str()
        .unwrap()
        .contains("username"));
    let same_email = app.register("bob", "A@X.org").await;
    assert_problem(&same_email, StatusCode::CONFLICT);
    assert!(same_email.body["detail"]
        .as_str()
        .unwrap()
        .contains("email"));
    // Full-width letters are NFKC-equal to ASCII: still the same name.
    let wide = app.register("\u{FF41}lice", "wide@x.org").await;
    assert_problem(&wide, StatusCode::CONFLICT);
}

#[tokio::test]
async fn register_rejects_each_policy_violation_with_422_naming_the_field() {
    let app = TestApp::new();
    let long_email = format!("{}@x.org", "a".repeat(250));
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"username": "ab", "email": "ab@x.org", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": &"a".repeat(33), "email": "ab@x.org", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "has space", "email": "ab@x.org", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "{\"$ne\": \"\"}", "email": "ab@x.org", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "nul\u{0}byte", "email": "ab@x.org", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "valid", "email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"username": "valid", "email": long_email, "password": PASSWORD}),
            "email",
        ),
        (
            json!({"username": "valid", "email": "v@x.org", "password": "short"}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "v@x.org", "password": "x".repeat(129)}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "v@x.org", "password": "password"}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "v@x.org", "password": "12345678"}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "v@x.org", "password": "qwerty123"}),
            "password",
        ),
        (
            json!({"username": "validname", "email": "v@x.org", "password": "ValidName"}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "long.address@x.org", "password": "long.address@x.org"}),
            "password",
        ),
        (
            json!({"email": "v@x.org", "password": PASSWORD}),
            "username",
        ),
        (json!({"username": "valid", "password": PASSWORD}), "email"),
        (json!({"username": "valid", "email": "v@x.org"}), "password"),
        (
            json!({"username": 42, "email": "v@x.org", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "valid", "email": ["v@x.org"], "password": PASSWORD}),
            "email",
        ),
        (
            json!({"username": "valid", "email": "v@x.org", "password": null}),
            "password",
        ),
    ];
    for (body, field) in cases {
        let reply = app.post_json("/users", &body.to_string()).await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            error_fields(&reply).contains(&field.to_owned()),
            "{body} should fail on {field}: {}",
            reply.text
        );
        assert!(!reply.text.contains(PASSWORD));
    }
    // Nothing was created along the way.
    assert_eq!(
        app.register("valid", "v@x.org").await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn register_reports_every_broken_rule_at_once() {
    let app = TestApp::new();
    let reply = app
        .post_json(
            "/users",
            r#"{"username":"a","email":"nope","password":"short"}"#,
        )
        .await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&reply), ["username", "email", "password"]);
}

#[tokio::test]
async fn register_ignores_unknown_fields() {
    let app = TestApp::new();
    let reply = app
        .post_json(
            "/users",
            &json!({"username": "extra", "email": "e@x.org", "password": PASSWORD, "admin": true})
                .to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

#[tokio::test]
async fn malformed_or_non_object_json_is_400_problem() {
    let app = TestApp::new();
    for body in ["{not json", "[1,2,3]", "\"a string\"", "", "null"] {
        let reply = app.post_json("/users", body).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST);
    }
    // Invalid UTF-8 inside a JSON string.
    let reply = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri_str("/users")
                .content_type("application/json")
                .body(b"{\"username\":\"\xff\xfe\"}".to_vec()),
        )
        .await;
    assert_problem(&reply, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oversized_bodies_are_413_and_non_json_is_415() {
    let app = TestApp::new();
    let huge = json!({"username": "big", "email": "b@x.org", "password": PASSWORD, "pad": "x".repeat(70_000)});
    assert_problem(
        &app.post_json("/users", &huge.to_string()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let reply = app
            .send(
                Request::builder()
                    .method(Method::POST)
                    .uri_str("/users")
                    .content_type(content_type)
                    .body("username=x"),
            )
            .await;
        assert_problem(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let no_type = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri_str("/users")
                .body("{}"),
        )
        .await;
    assert_problem(&no_type, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn fifty_concurrent_registrations_of_one_name_give_one_201() {
    let app = std::sync::Arc::new(TestApp::new());
    let replies = futures_join_all((0..50).map(|i| {
        let app = std::sync::Arc::clone(&app);
        async move {
            app.register(
                if i % 2 == 0 { "racer" } else { "RACER" },
                &format!("r{i}@x.org"),
            )
            .await
        }
    }))
    .await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let conflicts = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 49));
}

async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

// ---------------------------------------------------------------- token

#[tokio::test]
async fn password_grant_by_username_or_email_in_any_case() {
    let app = TestApp::new();
    app.register("Carol", "Carol@Example.org").await;
    for login in [
        "Carol",
        "carol",
        "CAROL",
        "carol@example.org",
        "CAROL@EXAMPLE.ORG",
    ] {
        let reply = app
            .post_form("/token", &password_form(login, PASSWORD))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{login}: {}", reply.text);
        assert_no_store(&reply);
        assert_eq!(reply.body["token_type"], "bearer");
        assert_eq!(reply.body["expires_in"], 900);
        let token = reply.body["access_token"].as_str().unwrap();
        assert_eq!(
            app.get("/users/me", Some(token)).await.body["username"],
            "Carol"
        );
    }
}

#[tokio::test]
async fn access_tokens_follow_the_rfc9068_profile() {
    let app = TestApp::new();
    let token = app.user_with_token("dave").await;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let header: Value =
        serde_json::from_slice(&engine.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims: Value =
        serde_json::from_slice(&engine.decode(parts.next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], hs256_kid(SECRET.as_bytes()));
    let me = app.get("/users/me", Some(&token)).await;
    assert_eq!(claims["sub"], me.body["id"], "sub is the user id");
    assert_eq!(claims["preferred_username"], "dave");
    assert_eq!(claims["iss"], "http://127.0.0.1:8080");
    for claim in ["iat", "nbf", "exp", "jti", "sid"] {
        assert!(claims.get(claim).is_some(), "missing {claim}");
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = TestApp::new();
    app.register("erin", "erin@x.org").await;
    let wrong = app
        .post_form("/token", &password_form("erin", "not the password"))
        .await;
    let unknown = app
        .post_form("/token", &password_form("nobody", PASSWORD))
        .await;
    let unknown_email = app
        .post_form("/token", &password_form("nobody@x.org", PASSWORD))
        .await;
    assert_oauth_error(&wrong, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(wrong.text, unknown.text);
    assert_eq!(wrong.text, unknown_email.text);
    assert_eq!(wrong.status, unknown.status);
}

#[tokio::test]
async fn token_request_errors_follow_rfc6749() {
    let app = TestApp::new();
    app.register("frank", "frank@x.org").await;
    let invalid_request = [
        "username=frank&password=x",                // no grant_type
        "grant_type=password&password=x",           // no username
        "grant_type=password&username=frank",       // no password
        "grant_type=password&username=&password=x", // empty = missing
        "grant_type=password&grant_type=password&username=frank&password=x", // repeated
        "grant_type=password&username=frank&username=frank&password=x", // repeated
        "grant_type=password&username=frank&password=%FF", // not UTF-8
    ];
    for body in invalid_request {
        let reply = app.post_form("/token", body).await;
        assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    }
    // Supported since the admin API, but only for a registered confidential
    // client: the legacy public client may not use it.
    let reply = app
        .post_form("/token", "grant_type=client_credentials")
        .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unauthorized_client");
    for grant in [
        "PASSWORD",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        let reply = app
            .post_form("/token", &format!("grant_type={grant}"))
            .await;
        assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    // v2 knows the code grant, but not for the implicit v1 client.
    let reply = app
        .post_form("/token", "grant_type=authorization_code&code=x")
        .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unauthorized_client");
    let json = app
        .post_json(
            "/token",
            r#"{"grant_type":"password","username":"frank","password":"x"}"#,
        )
        .await;
    assert_oauth_error(&json, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn client_id_and_basic_client_authentication_are_accepted_and_ignored() {
    let app = TestApp::new();
    app.register("gina", "gina@x.org").await;
    let with_client_id = app
        .post_form(
            "/token",
            &format!("{}&client_id=my-spa", password_form("gina", PASSWORD)),
        )
        .await;
    assert_eq!(
        with_client_id.status,
        StatusCode::OK,
        "{}",
        with_client_id.text
    );
    let with_basic = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri_str("/token")
                .content_type("application/x-www-form-urlencoded")
                .header("authorization", "Basic bXktc3BhOg==")
                .body(password_form("gina", PASSWORD)),
        )
        .await;
    assert_eq!(with_basic.status, StatusCode::OK, "{}", with_basic.text);
}

#[tokio::test]
async fn requested_scopes_are_narrowed_to_the_allowed_ones() {
    let mut config = common::test_config();
    config.tokens.scopes = vec!["profile".into(), "email".into()];
    let app = TestApp::with_config(config);
    app.register("hana", "hana@x.org").await;
    let reply = app
        .post_form(
            "/token",
            &format!(
                "{}&scope={}",
                password_form("hana", PASSWORD),
                encode("email admin profile")
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["scope"], "email profile");
    let none = app
        .post_form(
            "/token",
            &format!("{}&scope=admin", password_form("hana", PASSWORD)),
        )
        .await;
    assert!(none.body.get("scope").is_none(), "{}", none.text);
}

// ---------------------------------------------------------------- /users/me

fn sign(claims: &Value, kid: Option<&str>, secret: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The claims of a token we issued (payload decoded, not verified).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn claims_for(user_id: &str, iat: i64, nbf: i64, exp: i64) -> Value {
    json!({
        "iss": "http://127.0.0.1:8080", "sub": user_id, "preferred_username": "ivan",
        "iat": iat, "nbf": nbf, "exp": exp, "jti": "j", "client_id": "tessera",
        "sid": SID.with(|sid| sid.borrow().clone()),
    })
}

thread_local! {
    /// The session id forged test tokens claim (set per test from a real login).
    static SID: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

#[tokio::test]
async fn me_without_credentials_is_401_with_the_bare_challenge() {
    let app = TestApp::new();
    let reply = app.get("/users/me", None).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), Some(WWW_MISSING));
    for header in ["Basic aXZhbjpwdw==", "Token abc", "Bearer"] {
        let reply = app.get_with_authorization("/users/me", header).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{header}");
        assert!(
            reply
                .header("www-authenticate")
                .unwrap()
                .starts_with(WWW_MISSING),
            "{header}"
        );
    }
}

#[tokio::test]
async fn me_refuses_every_kind_of_bad_token_with_invalid_token() {
    let app = TestApp::new();
    let good = app.user_with_token("ivan").await;
    let sid = claims_of(&good)["sid"].as_str().unwrap().to_owned();
    SID.with(|cell| *cell.borrow_mut() = sid);
    let me = app.get("/users/me", Some(&good)).await;
    assert_eq!(me.status, StatusCode::OK);
    let id = me.body["id"].as_str().unwrap().to_owned();
    let kid = hs256_kid(SECRET.as_bytes());
    let now = chrono::Utc::now().timestamp();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let mut forged_payload = good.split('.').map(str::to_owned).collect::<Vec<_>>();
    forged_payload[1] = engine.encode(
        claims_for("00000000-0000-0000-0000-000000000000", now, now, now + 600).to_string(),
    );
    let alg_none = format!(
        "{}.{}.",
        engine.encode(format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#)),
        engine.encode(claims_for(&id, now, now, now + 600).to_string())
    );
    let mut other_issuer = claims_for(&id, now, now, now + 600);
    other_issuer["iss"] = json!("https://evil.example");

    let bad_tokens = [
        ("garbage", "not-a-jwt".to_owned()),
        ("tampered signature", tampered),
        ("forged payload", forged_payload.join(".")),
        ("alg none", alg_none),
        (
            "expired",
            sign(
                &claims_for(&id, now - 7200, now - 7200, now - 3600),
                Some(&kid),
                SECRET,
            ),
        ),
        (
            "not yet valid",
            sign(
                &claims_for(&id, now, now + 3600, now + 7200),
                Some(&kid),
                SECRET,
            ),
        ),
        ("other issuer", sign(&other_issuer, Some(&kid), SECRET)),
        (
            "wrong secret",
            sign(
                &claims_for(&id, now, now, now + 600),
                Some(&kid),
                "another-secret-another-secret-xx",
            ),
        ),
        (
            "unknown kid",
            sign(&claims_for(&id, now, now, now + 600), Some("nope"), SECRET),
        ),
        (
            "no kid",
            sign(&claims_for(&id, now, now, now + 600), None, SECRET),
        ),
    ];
    for (what, token) in bad_tokens {
        let reply = app.get("/users/me", Some(&token)).await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.header("www-authenticate"),
            Some(WWW_INVALID),
            "{what}"
        );
    }
    // Control: a token we signed the same way, but valid, is accepted.
    let valid = sign(&claims_for(&id, now, now, now + 600), Some(&kid), SECRET);
    assert_eq!(
        app.get("/users/me", Some(&valid)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn me_refuses_tokens_of_deleted_or_disabled_users() {
    use auth_core::UserStore;
    let app = TestApp::new();
    let gone = app.user_with_token("gone").await;
    let off = app.user_with_token("off").await;
    let store = app.state.service.store();
    let gone_id = uuid::Uuid::parse_str(
        app.get("/users/me", Some(&gone)).await.body["id"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let off_id = uuid::Uuid::parse_str(
        app.get("/users/me", Some(&off)).await.body["id"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(store.delete_user(gone_id).await.unwrap());
    store.set_disabled(off_id, true).await.unwrap();
    for token in [gone, off] {
        let reply = app.get("/users/me", Some(&token)).await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.header("www-authenticate"), Some(WWW_INVALID));
    }
    let disabled_login = app
        .post_form("/token", &password_form("off", PASSWORD))
        .await;
    assert_oauth_error(&disabled_login, StatusCode::BAD_REQUEST, "invalid_grant");
}

// ---------------------------------------------------------------- the rest

#[tokio::test]
async fn probes_answer() {
    let app = TestApp::new();
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::new();
    assert_problem(&app.get("/nope", None).await, StatusCode::NOT_FOUND);
    let reply = app
        .send(
            Request::builder()
                .method(Method::DELETE)
                .uri_str("/users/me")
                .finish(),
        )
        .await;
    assert_problem(&reply, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn every_response_carries_security_headers() {
    let app = TestApp::new();
    for path in ["/healthz", "/users/me", "/nope", "/docs"] {
        let reply = app.get(path, None).await;
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            reply.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        assert!(reply.header("content-security-policy").is_some(), "{path}");
    }
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_the_password_flow() {
    let app = TestApp::new();
    let doc = app.get("/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, method) in [
        ("/users", "post"),
        ("/users/me", "get"),
        ("/token", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    let schemes = &doc.body["components"]["securitySchemes"];
    let flows: Vec<_> = schemes
        .as_object()
        .unwrap()
        .values()
        .map(|scheme| {
            assert_eq!(scheme["type"], "oauth2");
            &scheme["flows"]
        })
        .collect();
    assert!(
        flows.iter().any(|f| f["password"]["tokenUrl"] == "/token"),
        "{schemes}"
    );
    assert!(
        flows
            .iter()
            .any(|f| f["clientCredentials"]["tokenUrl"] == "/token"
                && f["clientCredentials"]["scopes"].get("admin").is_some()),
        "{schemes}"
    );
    assert_eq!(
        paths["/token"]["post"]["requestBody"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["application/x-www-form-urlencoded"]
    );
    let docs = app.get("/docs", None).await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(docs.text.contains("swagger"), "Swagger UI page");
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_with_route_templates() {
    let app = TestApp::new();
    app.register("metered", "metered@x.org").await;
    app.post_form("/token", &password_form("metered", PASSWORD))
        .await;
    app.post_form("/token", &password_form("metered", "wrong password"))
        .await;
    app.get("/users/12345", None).await;
    let reply = app.get("/metrics", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let lines = reply.text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    let value = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum::<f64>()
    };
    assert!(
        value(
            "http_requests_total",
            &[("route", "/users"), ("status", "201")]
        ) >= 1.0
    );
    assert!(
        value(
            "http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    assert!(value("tessera_logins_total", &[("outcome", "success")]) >= 1.0);
    assert!(
        value(
            "tessera_logins_total",
            &[("outcome", "invalid_credentials")]
        ) >= 1.0
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "tessera_password_hash_queue_depth"),
        "queue depth gauge"
    );
    let histogram = scrape
        .samples
        .iter()
        .find(|s| s.metric == "http_request_duration_seconds")
        .expect("latency histogram");
    assert!(matches!(
        histogram.value,
        prometheus_parse::Value::Histogram(_)
    ));
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "tessera_store_call_duration_seconds"),
        "store latency"
    );
    assert!(
        !scrape
            .samples
            .iter()
            .any(|s| s.labels.values().any(|v| v.contains("12345"))),
        "raw paths never become labels"
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::new();
    let reply = app
        .send(
            Request::builder()
                .method(Method::GET)
                .uri_str("/healthz")
                .header("x-request-id", "abc-123")
                .finish(),
        )
        .await;
    assert_eq!(reply.header("x-request-id"), Some("abc-123"));
    let generated = app.get("/healthz", None).await;
    let id = generated.header("x-request-id").expect("generated");
    assert!(uuid::Uuid::parse_str(id).is_ok());
    let hostile = app
        .send(
            Request::builder()
                .method(Method::GET)
                .uri_str("/healthz")
                .header("x-request-id", "a".repeat(500))
                .finish(),
        )
        .await;
    assert_ne!(
        hostile.header("x-request-id"),
        Some("a".repeat(500).as_str())
    );
}

/// "No such user" and "wrong password" must cost the same: unknown users
/// are verified against a dummy hash of the same cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_take_the_same_time() {
    let mut config = common::test_config();
    // Costly enough that hashing dominates, as in production.
    config.passwords.memory_kib = 8 * 1024;
    config.passwords.iterations = 2;
    config.throttle.max_failures = 10_000;
    let app = TestApp::with_config(config);
    assert_eq!(
        app.register("timed", "timed@x.org").await.status,
        StatusCode::CREATED
    );
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for i in 0..41 {
        // Interleaved, so drift in machine load hits both alike.
        for (login, samples) in [("nobody-here", &mut unknown), ("timed", &mut wrong)] {
            let started = std::time::Instant::now();
            let reply = app
                .post_form("/token", &password_form(login, &format!("not it {i}")))
                .await;
            samples.push(started.elapsed());
            assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        }
    }
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let ratio = median(&mut unknown) / median(&mut wrong);
    eprintln!("timing: unknown/wrong median ratio {ratio:.3}");
    assert!(
        (0.8..=1.25).contains(&ratio),
        "unknown/wrong median ratio {ratio:.3}"
    );
}

/// A hash made with older (cheaper) parameters is replaced at the next
/// successful login, with the configured ones.
#[tokio::test]
async fn login_upgrades_hashes_made_with_old_parameters() {
    use auth_core::UserStore;
    let store = store_memory::MemoryStore::new();
    let mut old = common::test_config();
    old.passwords.memory_kib = 1024;
    let before = TestApp::with_store(store.clone(), old);
    assert_eq!(
        before.register("upgrader", "up@x.org").await.status,
        StatusCode::CREATED
    );
    let hash_of = |store: store_memory::MemoryStore| async move {
        store
            .find_user_by_username("upgrader")
            .await
            .unwrap()
            .unwrap()
            .password_hash
    };
    assert!(hash_of(store.clone()).await.contains("m=1024,"));

    let mut new = common::test_config();
    new.passwords.memory_kib = 2048;
    let after = TestApp::with_store(store.clone(), new);
    after.login("upgrader", PASSWORD).await;
    let upgraded = hash_of(store.clone()).await;
    assert!(upgraded.contains("m=2048,"), "{upgraded}");
    after.login("upgrader", PASSWORD).await;
}
