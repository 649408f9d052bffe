//! OpenID Connect provider, in-process. Tests are named after the OpenID
//! Foundation's Basic and Config OP conformance modules they mirror
//! (`oidcc-…`, with `_` for `-`); the official suite needs Docker and the
//! internet, so its checks are repeated here against the real handlers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use auth_core::{ClientRegistration, SigningAlgorithm};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::browser::{challenge, hidden, location, params_of, Browser};
use common::{encode, Reply, TestApp};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::http::{Method, StatusCode};
use poem::Request;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

const ISSUER: &str = "http://127.0.0.1:8080";
const SECRET: &str = "relying-party-secret-at-least-32-characters";
const CALLBACK: &str = "https://rp.example/cb";
const BYE: &str = "https://rp.example/bye";
const VERIFIER: &str = "oidc-verifier-oidc-verifier-oidc-verifier-0123";

fn relying_party() -> ClientRegistration {
    ClientRegistration {
        id: "rp".into(),
        name: Some("Relying Party".into()),
        secret: Some(SECRET.into()),
        redirect_uris: vec![CALLBACK.into()],
        post_logout_redirect_uris: vec![BYE.into(), format!("{BYE}?from=op")],
        first_party: true,
        ..ClientRegistration::default()
    }
}

fn app_with(change: impl FnOnce(&mut auth_server::Config)) -> TestApp {
    let mut config = common::test_config();
    config.clients = vec![relying_party()];
    change(&mut config);
    TestApp::with_config(config)
}

fn app() -> TestApp {
    app_with(|_| {})
}

fn authorize_url(extra: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id=rp&redirect_uri={}&state=st4te\
         &code_challenge={}&code_challenge_method=S256{extra}",
        encode(CALLBACK),
        challenge(VERIFIER)
    )
}

/// Registers `username`, signs in through the pages and returns the
/// browser (with its session cookie) and the callback's parameters.
async fn signed_in<'a>(
    app: &'a TestApp,
    username: &str,
    extra: &str,
) -> (Browser<'a>, BTreeMap<String, String>) {
    app.register(username, &format!("{username}@example.org"))
        .await;
    let mut browser = Browser::new(app);
    let start = browser.get(&authorize_url(extra)).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text);
    let back = browser.sign_in(&location(&start), username).await;
    let url = location(&back);
    assert!(url.starts_with(CALLBACK), "{url}");
    (browser, params_of(&url))
}

async fn redeem(app: &TestApp, code: &str) -> Reply {
    app.post_form(
        "/token",
        &format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}\
             &client_id=rp&client_secret={SECRET}",
            encode(code),
            encode(CALLBACK)
        ),
    )
    .await
}

/// The refresh grant for `rp` with the refresh token of a token response.
async fn refresh(app: &TestApp, tokens: &Value) -> Reply {
    app.post_form(
        "/token",
        &format!(
            "grant_type=refresh_token&refresh_token={}&client_id=rp&client_secret={SECRET}",
            tokens["refresh_token"].as_str().unwrap()
        ),
    )
    .await
}

/// The whole code flow: the token response.
async fn tokens(app: &TestApp, username: &str, extra: &str) -> Value {
    let (_, params) = signed_in(app, username, extra).await;
    let reply = redeem(app, &params["code"]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body
}

/// Verifies an ID token the way a relying party does: key from the JWKS by
/// `kid`, algorithm from the key, issuer and audience.
async fn verify_id_token(app: &TestApp, token: &str) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwks = app.get("/.well-known/jwks.json", None).await.body;
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"))
        .clone();
    let text = |name: &str| jwk[name].as_str().unwrap().to_owned();
    let (key, alg) = match text("kty").as_str() {
        "RSA" => (
            DecodingKey::from_rsa_components(&text("n"), &text("e")).unwrap(),
            Algorithm::RS256,
        ),
        "EC" => (
            DecodingKey::from_ec_components(&text("x"), &text("y")).unwrap(),
            Algorithm::ES256,
        ),
        _ => (
            DecodingKey::from_ed_components(&text("x")).unwrap(),
            Algorithm::EdDSA,
        ),
    };
    assert_eq!(header.alg, alg, "the key's algorithm");
    assert_eq!(jwk["alg"], format!("{alg:?}"));
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&["rp"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap();
    (header, data.claims)
}

fn at_hash(access_token: &str, alg: Algorithm) -> String {
    let digest = match alg {
        Algorithm::EdDSA => Sha512::digest(access_token.as_bytes()).to_vec(),
        _ => Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

#[tokio::test]
async fn oidcc_server_discovery_documents_agree_and_state_the_defaults() {
    let app = app();
    let oidc = app.get("/.well-known/openid-configuration", None).await;
    assert_eq!(oidc.status, StatusCode::OK);
    let doc = &oidc.body;
    assert_eq!(doc["issuer"], ISSUER, "byte for byte");
    for (field, value) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("end_session_endpoint", "/logout"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ] {
        assert_eq!(doc[field], format!("{ISSUER}{value}"), "{field}");
    }
    let list = |field: &str| -> Vec<String> {
        doc[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("response_types_supported"), ["code"]);
    assert_eq!(list("response_modes_supported"), ["query"]);
    assert_eq!(list("subject_types_supported"), ["public"]);
    assert_eq!(list("code_challenge_methods_supported"), ["S256"]);
    assert_eq!(list("id_token_signing_alg_values_supported"), ["RS256"]);
    for scope in ["openid", "profile", "email", "offline_access"] {
        assert!(
            list("scopes_supported").iter().any(|s| s == scope),
            "{scope}"
        );
    }
    for claim in ["sub", "auth_time", "nonce", "email_verified", "sid", "amr"] {
        assert!(
            list("claims_supported").iter().any(|s| s == claim),
            "{claim}"
        );
    }
    assert!(list("grant_types_supported").contains(&"authorization_code".to_owned()));
    assert!(
        list("token_endpoint_auth_methods_supported").contains(&"client_secret_basic".to_owned())
    );
    for field in [
        "request_parameter_supported",
        "request_uri_parameter_supported",
        "claims_parameter_supported",
    ] {
        assert_eq!(
            doc[field], false,
            "{field}: Discovery's defaults would be wrong"
        );
    }
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    let rfc8414 = app
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(rfc8414.body, oidc.body, "one set of values");
    // The ID-token key is published even though access tokens use HS256.
    let jwks = app.get("/.well-known/jwks.json", None).await.body;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(keys
        .iter()
        .any(|k| k["kid"] == "rs256-test" && k["alg"] == "RS256"));
    assert!(
        keys.iter().all(|k| k.get("d").is_none()),
        "no private parts"
    );
}

#[tokio::test]
async fn oidcc_server_id_token_carries_the_core_claims() {
    let app = app();
    let body = tokens(
        &app,
        "ida",
        "&scope=openid+email+profile&nonce=n-0S6_WzA2Mj",
    )
    .await;
    let access = body["access_token"].as_str().unwrap();
    let (header, claims) = verify_id_token(&app, body["id_token"].as_str().unwrap()).await;
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some("rs256-test"));
    let me = app.get("/users/me", Some(access)).await.body;
    assert_eq!(claims["sub"], me["id"], "sub is the user id");
    assert_eq!(claims["aud"], "rp");
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj", "exactly as sent");
    assert_eq!(claims["at_hash"], at_hash(access, Algorithm::RS256));
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert!(claims["sid"].is_string());
    assert_eq!(claims["email"], "ida@example.org");
    assert_eq!(claims["email_verified"], false);
    assert_eq!(claims["preferred_username"], "ida");
    let now = chrono::Utc::now().timestamp();
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!((now - 30..=now).contains(&auth_time));
    assert!(claims["exp"].as_i64().unwrap() > now);
    let iat = claims["iat"].as_i64().unwrap();
    assert!((now - 30..=now).contains(&iat));
}

#[tokio::test]
async fn oidcc_ensure_request_without_nonce_succeeds_for_code_flow() {
    let app = app();
    let body = tokens(&app, "nonceless", "&scope=openid").await;
    let (_, claims) = verify_id_token(&app, body["id_token"].as_str().unwrap()).await;
    assert!(claims.get("nonce").is_none(), "absent when not sent");
    assert!(claims.get("email").is_none(), "no email scope, no email");
    assert!(claims.get("preferred_username").is_none());
}

#[tokio::test]
async fn oidcc_scope_without_openid_gets_no_id_token() {
    let app = app();
    let body = tokens(&app, "plainoauth", "&scope=email").await;
    assert!(body.get("id_token").is_none(), "{body}");
    let info = app.get("/userinfo", body["access_token"].as_str()).await;
    assert_eq!(info.status, StatusCode::FORBIDDEN);
    assert!(
        info.header("www-authenticate")
            .unwrap()
            .contains(r#"error="insufficient_scope""#),
        "{:?}",
        info.headers
    );
}

#[tokio::test]
async fn oidcc_codereuse_revokes_the_tokens_of_the_first_redemption() {
    let app = app();
    let (_, params) = signed_in(&app, "reuser", "&scope=openid").await;
    let first = redeem(&app, &params["code"]).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = redeem(&app, &params["code"]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.body["error"], "invalid_grant");
    let info = app
        .get("/userinfo", first.body["access_token"].as_str())
        .await;
    assert_eq!(info.status, StatusCode::UNAUTHORIZED);
}

async fn userinfo_post(app: &TestApp, bearer: Option<&str>, form: &str) -> Reply {
    let mut req = Request::builder().method(Method::POST).uri_str("/userinfo");
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = if form.is_empty() {
        req.finish()
    } else {
        req.content_type("application/x-www-form-urlencoded")
            .body(form.to_owned())
    };
    app.send(req).await
}

#[tokio::test]
async fn oidcc_userinfo_get_post_header_and_post_body_agree_with_the_id_token() {
    let app = app();
    let body = tokens(&app, "info", "&scope=openid+email").await;
    let access = body["access_token"].as_str().unwrap();
    let (_, claims) = verify_id_token(&app, body["id_token"].as_str().unwrap()).await;
    let expected = serde_json::json!({
        "sub": claims["sub"],
        "email": "info@example.org",
        "email_verified": false,
    });
    let get = app.get("/userinfo", Some(access)).await;
    assert_eq!(get.status, StatusCode::OK, "{}", get.text);
    assert_eq!(get.body, expected, "oidcc-userinfo-get");
    let header = userinfo_post(&app, Some(access), "").await;
    assert_eq!(header.body, expected, "oidcc-userinfo-post-header");
    let form = userinfo_post(&app, None, &format!("access_token={access}")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert_eq!(form.body, expected, "oidcc-userinfo-post-body");
    assert_eq!(
        get.header("cache-control"),
        Some("no-store"),
        "personal data is not cached"
    );

    let both = userinfo_post(&app, Some(access), &format!("access_token={access}")).await;
    assert_eq!(
        both.status,
        StatusCode::BAD_REQUEST,
        "RFC 6750 §2: one method"
    );
    let none = app.get("/userinfo", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.header("www-authenticate"),
        Some(r#"Bearer realm="tessera""#)
    );
    let bad = app.get("/userinfo", Some("not-a-token")).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad
        .header("www-authenticate")
        .unwrap()
        .contains(r#"error="invalid_token""#));
    let id_token_as_access = app.get("/userinfo", body["id_token"].as_str()).await;
    assert_eq!(
        id_token_as_access.status,
        StatusCode::UNAUTHORIZED,
        "an ID token is not an access token"
    );
}

#[tokio::test]
async fn oidcc_prompt_none_not_logged_in_is_login_required_without_a_page() {
    let app = app();
    let mut browser = Browser::new(&app);
    let reply = browser
        .get(&authorize_url("&scope=openid&prompt=none"))
        .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let params = params_of(&location(&reply));
    assert_eq!(params["error"], "login_required");
    assert_eq!(params["state"], "st4te");
    assert_eq!(params["iss"], ISSUER);
}

#[tokio::test]
async fn oidcc_prompt_none_logged_in_returns_a_code_at_once() {
    let app = app();
    let (mut browser, _) = signed_in(&app, "silent", "&scope=openid").await;
    let reply = browser
        .get(&authorize_url("&scope=openid&prompt=none"))
        .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let params = params_of(&location(&reply));
    assert!(params.contains_key("code"), "{params:?}");
    assert_eq!(redeem(&app, &params["code"]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn oidcc_max_age_1_asks_again_and_auth_time_moves() {
    let app = app();
    let (mut browser, params) = signed_in(&app, "aged", "&scope=openid").await;
    let first = redeem(&app, &params["code"]).await.body;
    let (_, first_claims) = verify_id_token(&app, first["id_token"].as_str().unwrap()).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let silent = browser
        .get(&authorize_url("&scope=openid&max_age=1&prompt=none"))
        .await;
    assert_eq!(params_of(&location(&silent))["error"], "login_required");
    let again = browser.get(&authorize_url("&scope=openid&max_age=1")).await;
    let page = location(&again);
    assert!(page.starts_with("/sign-in?"), "max_age exceeded: {page}");
    let back = browser.sign_in(&page, "aged").await;
    let code = params_of(&location(&back))["code"].clone();
    let second = redeem(&app, &code).await.body;
    let (_, claims) = verify_id_token(&app, second["id_token"].as_str().unwrap()).await;
    assert!(
        claims["auth_time"].as_i64() > first_claims["auth_time"].as_i64(),
        "auth_time moved: {} -> {}",
        first_claims["auth_time"],
        claims["auth_time"]
    );
}

#[tokio::test]
async fn oidcc_max_age_10000_does_not_ask_again() {
    let app = app();
    let (mut browser, _) = signed_in(&app, "recent", "&scope=openid").await;
    let reply = browser
        .get(&authorize_url("&scope=openid&max_age=10000"))
        .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert!(params_of(&location(&reply)).contains_key("code"));
}

#[tokio::test]
async fn oidcc_id_token_hint_names_the_expected_person() {
    let app = app();
    let (mut browser, params) = signed_in(&app, "hinted", "&scope=openid").await;
    let hint = redeem(&app, &params["code"]).await.body["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let same = browser
        .get(&authorize_url(&format!(
            "&scope=openid&prompt=none&id_token_hint={hint}"
        )))
        .await;
    assert!(
        params_of(&location(&same)).contains_key("code"),
        "same person"
    );

    // Someone else's hint: this browser's person is not the one expected.
    let other = tokens(&app, "otherone", "&scope=openid").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mismatch = browser
        .get(&authorize_url(&format!(
            "&scope=openid&prompt=none&id_token_hint={other}"
        )))
        .await;
    assert_eq!(params_of(&location(&mismatch))["error"], "login_required");

    let forged = browser
        .get(&authorize_url(
            "&scope=openid&id_token_hint=eyJhbGciOiJub25lIn0.e30.",
        ))
        .await;
    assert_eq!(params_of(&location(&forged))["error"], "invalid_request");
}

#[tokio::test]
async fn oidcc_refresh_token_gives_a_new_id_token_for_the_same_person() {
    let app = app();
    let body = tokens(&app, "refresher", "&scope=openid+offline_access&nonce=abc").await;
    let (_, before) = verify_id_token(&app, body["id_token"].as_str().unwrap()).await;
    let refreshed = refresh(&app, &body).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
    let (_, after) = verify_id_token(&app, refreshed.body["id_token"].as_str().unwrap()).await;
    assert_eq!(after["sub"], before["sub"]);
    assert_eq!(
        after["auth_time"], before["auth_time"],
        "the original sign-in"
    );
    assert_eq!(after["sid"], before["sid"]);
    assert!(after.get("nonce").is_none(), "Core §12.2");
    assert_eq!(
        after["at_hash"],
        at_hash(
            refreshed.body["access_token"].as_str().unwrap(),
            Algorithm::RS256
        )
    );
}

#[tokio::test]
async fn id_tokens_are_signed_with_the_configured_algorithm() {
    for (alg, kid, jwt) in [
        (SigningAlgorithm::ES256, "es256-test", Algorithm::ES256),
        (SigningAlgorithm::EdDSA, "eddsa-test", Algorithm::EdDSA),
        (SigningAlgorithm::RS256, "rs256-test", Algorithm::RS256),
    ] {
        let app = app_with(|c| c.oidc.id_token_algorithm = alg);
        let doc = app
            .get("/.well-known/openid-configuration", None)
            .await
            .body;
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!([alg.as_str()])
        );
        let body = tokens(&app, "algo", "&scope=openid").await;
        let (header, claims) = verify_id_token(&app, body["id_token"].as_str().unwrap()).await;
        assert_eq!(header.alg, jwt);
        assert_eq!(header.kid.as_deref(), Some(kid));
        assert_eq!(
            claims["at_hash"],
            at_hash(body["access_token"].as_str().unwrap(), jwt),
            "{alg}: the hash of the signing algorithm"
        );
    }
}

#[tokio::test]
async fn a_new_id_token_key_signs_new_tokens_and_old_ones_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    auth_server::keys::write_new_key(dir.path(), SigningAlgorithm::RS256, Some("rs256-2026-a"))
        .unwrap();
    let store = store_memory::MemoryStore::new();
    let config = |dir: &std::path::Path| {
        let mut config = common::test_config();
        config.clients = vec![relying_party()];
        config.oidc.keys_dir = Some(dir.to_owned());
        config
    };
    let before = TestApp::with_store(store.clone(), config(dir.path()));
    let old = tokens(&before, "rotated", "&scope=openid").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    auth_server::keys::write_new_key(dir.path(), SigningAlgorithm::RS256, Some("rs256-2026-b"))
        .unwrap();
    let after = TestApp::with_store(store, config(dir.path()));
    let (old_header, _) = verify_id_token(&after, &old).await;
    assert_eq!(
        old_header.kid.as_deref(),
        Some("rs256-2026-a"),
        "still in the JWKS"
    );
    let (_, params) = {
        let mut browser = Browser::new(&after);
        let start = browser.get(&authorize_url("&scope=openid")).await;
        let back = browser.sign_in(&location(&start), "rotated").await;
        (browser, params_of(&location(&back)))
    };
    let fresh = redeem(&after, &params["code"]).await.body;
    let (header, _) = verify_id_token(&after, fresh["id_token"].as_str().unwrap()).await;
    assert_eq!(
        header.kid.as_deref(),
        Some("rs256-2026-b"),
        "the newest key signs"
    );
}

/// GET `/logout` with `query`.
async fn logout(browser: &mut Browser<'_>, query: &str) -> Reply {
    browser.get(&format!("/logout?{query}")).await
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_with_a_hint_ends_the_sign_in_and_its_sessions() {
    let app = app();
    let (mut browser, params) = signed_in(&app, "leaving", "&scope=openid+offline_access").await;
    let body = redeem(&app, &params["code"]).await.body;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let hint = body["id_token"].as_str().unwrap().to_owned();
    let reply = logout(
        &mut browser,
        &format!(
            "id_token_hint={hint}&post_logout_redirect_uri={}&state=bye+state",
            encode(BYE)
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    assert_eq!(location(&reply), format!("{BYE}?state=bye+state"));
    assert!(reply
        .headers
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("tessera_session=;")));
    assert!(!browser.cookies.contains_key("tessera_session"));

    assert_eq!(
        app.get("/users/me", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refresh = refresh(&app, &body).await;
    assert_eq!(refresh.body["error"], "invalid_grant");
    let silent = browser
        .get(&authorize_url("&scope=openid&prompt=none"))
        .await;
    assert_eq!(params_of(&location(&silent))["error"], "login_required");
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_without_a_hint_asks_first_and_guards_against_csrf() {
    let app = app();
    let (mut browser, params) = signed_in(&app, "careful", "&scope=openid").await;
    let access = redeem(&app, &params["code"]).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let query = format!(
        "client_id=rp&post_logout_redirect_uri={}&state=s1",
        encode(&format!("{BYE}?from=op"))
    );
    let page = logout(&mut browser, &query).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains(">Sign out</button>"), "{}", page.text);
    assert!(page.text.contains("careful"));
    assert_eq!(page.header("cache-control"), Some("no-store"));

    // A forged form (no CSRF token of this browser) changes nothing.
    let forged = browser
        .post(
            "/logout",
            &format!("{query}&decision=sign_out&csrf_token=forged"),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get("/users/me", Some(&access)).await.status,
        StatusCode::OK
    );

    let csrf = hidden(&page.text, "csrf_token");
    let confirmed = browser
        .post(
            "/logout",
            &format!(
                "csrf_token={csrf}&decision=sign_out&client_id=rp&post_logout_redirect_uri={}&state=s1",
                encode(&hidden(&page.text, "post_logout_redirect_uri"))
            ),
        )
        .await;
    assert_eq!(
        confirmed.status,
        StatusCode::SEE_OTHER,
        "{}",
        confirmed.text
    );
    assert_eq!(
        location(&confirmed),
        format!("{BYE}?from=op&state=s1"),
        "query kept"
    );
    assert_eq!(
        app.get("/users/me", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Nobody signed in any more: nothing to confirm, straight to the page.
    let done = logout(&mut browser, "").await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.text.contains("You are signed out"), "{}", done.text);
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_refuses_unregistered_or_unattributed_redirects() {
    let app = app();
    let (mut browser, params) = signed_in(&app, "strict", "&scope=openid").await;
    let hint = redeem(&app, &params["code"]).await.body["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for query in [
        format!(
            "id_token_hint={hint}&post_logout_redirect_uri={}",
            encode("https://evil.example/")
        ),
        format!(
            "client_id=rp&post_logout_redirect_uri={}",
            encode(&format!("{BYE}/"))
        ),
        format!("post_logout_redirect_uri={}", encode(BYE)),
        format!("id_token_hint={hint}&client_id=someone-else"),
        "id_token_hint=eyJhbGciOiJub25lIn0.e30.".to_owned(),
        "client_id=unknown".to_owned(),
        format!(
            "client_id=rp&post_logout_redirect_uri={}&state={}",
            encode(BYE),
            "s".repeat(2049)
        ),
    ] {
        let reply = logout(&mut browser, &query).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            reply.header("location").is_none(),
            "never redirected: {query}"
        );
        assert!(reply.text.contains("role=\"alert\""));
    }
    // Still signed in after all of that.
    let silent = browser
        .get(&authorize_url("&scope=openid&prompt=none"))
        .await;
    assert!(params_of(&location(&silent)).contains_key("code"));
}
