//! The authorization-code flow in-process: `/authorize`, the hosted pages,
//! the `authorization_code` grant and client authentication.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_core::ClientRegistration;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::browser::{challenge, hidden, location, params_of, Browser};
use common::{encode, Reply, TestApp, PASSWORD};
use poem::http::{Method, StatusCode};
use poem::Request;

const WEB_SECRET: &str = "web-app-secret-at-least-32-characters-long";
const WEB_CALLBACK: &str = "https://web.example/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn clients() -> Vec<ClientRegistration> {
    vec![
        ClientRegistration {
            id: "web".into(),
            name: Some("Web Shop".into()),
            secret: Some(WEB_SECRET.into()),
            redirect_uris: vec![WEB_CALLBACK.into(), "https://web.example/other".into()],
            ..ClientRegistration::default()
        },
        ClientRegistration {
            id: "cli".into(),
            name: Some("Command Line".into()),
            redirect_uris: vec!["http://127.0.0.1/callback".into()],
            first_party: true,
            ..ClientRegistration::default()
        },
    ]
}

fn app_with(change: impl FnOnce(&mut auth_server::Config)) -> TestApp {
    let mut config = common::test_config();
    config.clients = clients();
    change(&mut config);
    TestApp::with_config(config)
}

fn app() -> TestApp {
    app_with(|_| {})
}

/// The query of an authorization request for the `web` client.
fn web_request(extra: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id=web&redirect_uri={}&scope=openid+email+offline_access\
         &state=xyz+123&code_challenge={}&code_challenge_method=S256{extra}",
        encode(WEB_CALLBACK),
        challenge(VERIFIER)
    )
}

async fn redeem(app: &TestApp, code: &str, auth: &str) -> Reply {
    app.post_form(
        "/token",
        &format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}{auth}",
            encode(code),
            encode(WEB_CALLBACK)
        ),
    )
    .await
}

/// `POST /token` with `Authorization: Basic {basic}`.
async fn token_with_basic(app: &TestApp, basic: &str, form: String) -> Reply {
    app.send(
        Request::builder()
            .method(Method::POST)
            .uri_str("/token")
            .header("authorization", format!("Basic {basic}"))
            .content_type("application/x-www-form-urlencoded")
            .body(form),
    )
    .await
}

fn web_post_auth() -> String {
    format!("&client_id=web&client_secret={WEB_SECRET}")
}

/// Registers `username`, runs the whole flow for `web` and returns the code.
async fn code_for(app: &TestApp, username: &str) -> String {
    let mut browser = Browser::new(app);
    app.register(username, &format!("{username}@example.org"))
        .await;
    let start = browser.get(&web_request("")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text);
    let signed_in = browser.sign_in(&location(&start), username).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text
    );
    let consent_page = location(&signed_in);
    assert!(
        consent_page.starts_with("/consent?request="),
        "{consent_page}"
    );
    let allowed = browser.submit(&consent_page, "decision=allow").await;
    let back = location(&allowed);
    assert!(back.starts_with(WEB_CALLBACK), "{back}");
    params_of(&back)["code"].clone()
}

#[tokio::test]
async fn the_code_flow_signs_in_asks_consent_and_returns_a_code_with_state_and_iss() {
    let app = app();
    let mut browser = Browser::new(&app);
    app.register("ada", "ada@example.org").await;
    let start = browser.get(&web_request("&login_hint=ada")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let sign_in_page = location(&start);
    assert!(
        sign_in_page.starts_with("/sign-in?request="),
        "{sign_in_page}"
    );

    let page = browser.get(&sign_in_page).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("Web Shop"), "names the client");
    assert!(page.text.contains(r#"value="ada""#), "login_hint pre-fills");
    assert!(page
        .text
        .contains(r#"<label for="username">Username or email</label>"#));
    assert!(page
        .text
        .contains(r#"<label for="password">Password</label>"#));
    assert!(page.text.contains(">Sign in</button>"));
    assert!(page.text.contains(">Create account</a>"));

    let signed_in = browser.sign_in(&sign_in_page, "ADA@example.org").await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text
    );
    let session_cookie = signed_in.header("set-cookie").unwrap_or_default();
    assert!(
        session_cookie.starts_with("tessera_session="),
        "{session_cookie}"
    );
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"));

    let consent_page = location(&signed_in);
    let consent = browser.get(&consent_page).await;
    assert!(consent.text.contains("Web Shop"));
    assert!(consent.text.contains("See your email address"));
    assert!(consent.text.contains(">Allow</button>") && consent.text.contains(">Deny</button>"));
    let allowed = browser.submit(&consent_page, "decision=allow").await;
    assert_eq!(allowed.status, StatusCode::SEE_OTHER);
    let back = params_of(&location(&allowed));
    assert_eq!(back["state"], "xyz 123", "state echoed exactly");
    assert_eq!(back["iss"], "http://127.0.0.1:8080", "RFC 9207 iss");
    let code = &back["code"];
    assert!(
        URL_SAFE_NO_PAD.decode(code).unwrap().len() >= 16,
        "≥ 128 bits"
    );

    let tokens = redeem(&app, code, &web_post_auth()).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
    assert_eq!(tokens.body["scope"], "email offline_access openid");
    assert!(tokens.body["refresh_token"].is_string(), "offline_access");
    let access = tokens.body["access_token"].as_str().unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["client_id"], "web");
    let me = app.get("/users/me", Some(access)).await;
    assert_eq!(me.body["username"], "ada");

    // The same browser again: signed in and consented, straight back with a code.
    let again = browser.get(&web_request("")).await;
    assert_eq!(again.status, StatusCode::FOUND, "{}", again.text);
    assert!(params_of(&location(&again)).contains_key("code"));
    // prompt=login asks for the password again, and prompt=consent for consent.
    let relogin = browser.get(&web_request("&prompt=login")).await;
    assert!(location(&relogin).starts_with("/sign-in?"));
    let reconsent = browser.get(&web_request("&prompt=consent")).await;
    assert!(location(&reconsent).starts_with("/consent?"));
}

#[tokio::test]
async fn removing_an_apps_access_on_the_account_page_signs_it_out_and_asks_again() {
    use auth_core::store::AuditStore as _;
    let app = app();
    let mut browser = Browser::new(&app);
    app.register("cleo", "cleo@example.org").await;
    let start = browser.get(&web_request("")).await;
    let signed_in = browser.sign_in(&location(&start), "cleo").await;
    let allowed = browser
        .submit(&location(&signed_in), "decision=allow")
        .await;
    let code = params_of(&location(&allowed))["code"].clone();
    let tokens = redeem(&app, &code, &web_post_auth()).await;
    let refresh = tokens.body["refresh_token"].as_str().unwrap().to_owned();
    let basic = STANDARD.encode(format!("web:{WEB_SECRET}"));

    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.text);
    assert!(account.text.contains("Apps you've allowed"));
    assert!(account.text.contains("<strong>Web Shop</strong>"));
    assert!(
        !account.text.contains("<strong>web</strong>"),
        "the app's session is named like the app"
    );
    assert!(account.text.contains("See your email address"));
    assert!(account.text.contains("Stay signed in"));
    let csrf = hidden(&account.text, "csrf_token");

    // Without the page's CSRF token: refused, nothing changes.
    let forged = browser.post("/account/apps/remove", "client=web").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let still = token_with_basic(
        &app,
        &basic,
        format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.text);
    let refresh = still.body["refresh_token"].as_str().unwrap().to_owned();

    let removed = browser
        .post(
            "/account/apps/remove",
            &format!("csrf_token={csrf}&client=web"),
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.text);
    assert_eq!(location(&removed), "/account");
    let after = token_with_basic(
        &app,
        &basic,
        format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(
        after.status,
        StatusCode::BAD_REQUEST,
        "the app is signed out"
    );
    assert_eq!(after.body["error"], "invalid_grant");
    let account = browser.get("/account").await;
    assert!(!account.text.contains("Remove access for Web Shop"));
    assert!(account.text.contains("When an app asks for access"));

    // Its next request asks for consent again; removing twice is a 404 page.
    let again = browser.get(&web_request("")).await;
    assert!(
        location(&again).starts_with("/consent?"),
        "{}",
        location(&again)
    );
    let twice = browser
        .post(
            "/account/apps/remove",
            &format!("csrf_token={csrf}&client=web"),
        )
        .await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND);
    assert!(twice.text.contains("already removed"), "{}", twice.text);

    let cleo = app.state.service.find_user("cleo").await.unwrap();
    let audited = app
        .state
        .service
        .store()
        .query_audit(&auth_core::AuditQuery {
            action: Some("consent.revoked".into()),
            limit: 10,
            ..auth_core::AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        audited.len(),
        1,
        "one record, for the withdrawal that happened"
    );
    assert_eq!(audited[0].actor, format!("user:{}", cleo.id));
    assert_eq!(audited[0].target.as_deref(), Some("client:web"));
}

#[tokio::test]
async fn the_refresh_token_stays_with_its_client() {
    let app = app();
    let code = code_for(&app, "ben").await;
    let tokens = redeem(&app, &code, &web_post_auth()).await;
    let refresh = tokens.body["refresh_token"].as_str().unwrap().to_owned();
    let basic = STANDARD.encode(format!("web:{WEB_SECRET}"));
    let by_web = token_with_basic(
        &app,
        &basic,
        format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(by_web.status, StatusCode::OK, "{}", by_web.text);
    let next = by_web.body["refresh_token"].as_str().unwrap();
    let by_legacy = app
        .post_form(
            "/token",
            &format!("grant_type=refresh_token&refresh_token={next}"),
        )
        .await;
    assert_eq!(by_legacy.status, StatusCode::BAD_REQUEST);
    assert_eq!(by_legacy.body["error"], "invalid_grant");
}

#[tokio::test]
async fn without_offline_access_no_refresh_token_is_issued() {
    let app = app();
    let mut browser = Browser::new(&app);
    app.register("cyd", "cyd@example.org").await;
    let request = web_request("").replace("+offline_access", "");
    let start = browser.get(&request).await;
    let signed_in = browser.sign_in(&location(&start), "cyd").await;
    let allowed = browser
        .submit(&location(&signed_in), "decision=allow")
        .await;
    let code = params_of(&location(&allowed))["code"].clone();
    let tokens = redeem(&app, &code, &web_post_auth()).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
    assert!(
        tokens.body.get("refresh_token").is_none(),
        "{}",
        tokens.text
    );
}

#[tokio::test]
async fn a_redeemed_code_presented_again_is_invalid_grant_and_revokes_its_session() {
    let app = app();
    let code = code_for(&app, "dee").await;
    let first = redeem(&app, &code, &web_post_auth()).await;
    assert_eq!(first.status, StatusCode::OK);
    let access = first.body["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/users/me", Some(access)).await.status,
        StatusCode::OK
    );
    let second = redeem(&app, &code, &web_post_auth()).await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    assert_eq!(second.body["error"], "invalid_grant");
    assert_eq!(
        app.get("/users/me", Some(access)).await.status,
        StatusCode::UNAUTHORIZED,
        "the first use's session is revoked"
    );
}

#[tokio::test]
async fn code_checks_refuse_every_mismatch() {
    let app = app();
    let callback = encode(WEB_CALLBACK);
    let cases = [
        (
            "wrong verifier",
            format!(
                "&redirect_uri={callback}&code_verifier={}{}",
                "x".repeat(43),
                web_post_auth()
            ),
        ),
        (
            "missing verifier",
            format!("&redirect_uri={callback}{}", web_post_auth()),
        ),
        (
            "changed redirect_uri",
            format!(
                "&redirect_uri={}&code_verifier={VERIFIER}{}",
                encode("https://web.example/other"),
                web_post_auth()
            ),
        ),
        (
            "another client's code",
            format!("&redirect_uri={callback}&code_verifier={VERIFIER}&client_id=cli"),
        ),
    ];
    for (i, (label, rest)) in cases.iter().enumerate() {
        let code = code_for(&app, &format!("eve{i}")).await;
        let reply = app
            .post_form(
                "/token",
                &format!("grant_type=authorization_code&code={code}{rest}"),
            )
            .await;
        assert_eq!(reply.body["error"], "invalid_grant", "{label}");
    }
    let reply = redeem(&app, "made-up-code", &web_post_auth()).await;
    assert_eq!(reply.body["error"], "invalid_grant", "unknown code");
}

#[tokio::test]
async fn an_expired_code_is_invalid_grant() {
    let app = app_with(|c| c.oauth.code_ttl = std::time::Duration::from_secs(1));
    let code = code_for(&app, "fay").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reply = redeem(&app, &code, &web_post_auth()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["error"], "invalid_grant");
}

#[tokio::test]
async fn confidential_clients_must_authenticate() {
    let app = app();
    let code = code_for(&app, "gil").await;
    let wrong_post = redeem(&app, &code, "&client_id=web&client_secret=wrong").await;
    assert_eq!(wrong_post.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_post.body["error"], "invalid_client");
    assert_eq!(wrong_post.header("www-authenticate"), None);
    let none = redeem(&app, &code, "&client_id=web").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let basic = STANDARD.encode("web:wrong-secret");
    let wrong_basic = token_with_basic(
        &app,
        &basic,
        format!("grant_type=authorization_code&code={code}&code_verifier={VERIFIER}"),
    )
    .await;
    assert_eq!(wrong_basic.status, StatusCode::UNAUTHORIZED);
    assert!(wrong_basic
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Basic")));
    // Failed authentication spent nothing: the code still works.
    let good = redeem(&app, &code, &web_post_auth()).await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.text);
}

#[tokio::test]
async fn public_native_clients_use_any_loopback_port_and_no_secret() {
    let app = app();
    let mut browser = Browser::new(&app);
    app.register("hal", "hal@example.org").await;
    let redirect = "http://127.0.0.1:53127/callback";
    let request = format!(
        "/authorize?response_type=code&client_id=cli&redirect_uri={}&code_challenge={}\
         &code_challenge_method=S256&state=s",
        encode(redirect),
        challenge(VERIFIER)
    );
    let start = browser.get(&request).await;
    let signed_in = browser.sign_in(&location(&start), "hal").await;
    let back = location(&signed_in);
    assert!(
        back.starts_with(redirect),
        "first party: no consent page: {back}"
    );
    let code = &params_of(&back)["code"];
    let tokens = app
        .post_form(
            "/token",
            &format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}\
                 &client_id=cli",
                encode(redirect)
            ),
        )
        .await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
    assert!(
        tokens.body.get("refresh_token").is_none(),
        "no offline_access asked"
    );
}

#[tokio::test]
async fn unknown_clients_and_unregistered_redirect_uris_get_a_page_and_no_redirect() {
    let app = app();
    let base = format!(
        "response_type=code&code_challenge={}&code_challenge_method=S256&state=s",
        challenge(VERIFIER)
    );
    let variants = [
        format!("client_id=nobody&redirect_uri={}", encode(WEB_CALLBACK)),
        format!(
            "client_id=web&redirect_uri={}",
            encode("https://web.example/callback/")
        ),
        format!(
            "client_id=web&redirect_uri={}",
            encode("https://WEB.example/callback")
        ),
        format!(
            "client_id=web&redirect_uri={}",
            encode("https://web.example/callback?x=1")
        ),
        format!(
            "client_id=web&redirect_uri={}",
            encode("https://web.example/callback#f")
        ),
        format!(
            "client_id=web&redirect_uri={}",
            encode("https://web.example:8443/callback")
        ),
        format!(
            "client_id=web&redirect_uri={}",
            encode("https://evil.example/callback")
        ),
        "client_id=web".to_owned(),
        format!("redirect_uri={}", encode(WEB_CALLBACK)),
        format!(
            "client_id=web&client_id=cli&redirect_uri={}",
            encode(WEB_CALLBACK)
        ),
    ];
    for variant in variants {
        let reply = app.get(&format!("/authorize?{base}&{variant}"), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{variant}");
        assert_eq!(reply.header("location"), None, "{variant}");
        assert!(
            reply
                .header("content-type")
                .unwrap_or_default()
                .starts_with("text/html"),
            "{variant}"
        );
        assert!(
            reply.text.contains("not sent anywhere"),
            "{variant}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn other_request_errors_go_back_to_the_client_with_state_and_iss() {
    let app = app();
    let cases = [
        (
            web_request("").replace("&code_challenge_method=S256", ""),
            "invalid_request",
        ),
        (
            web_request("").replace(
                "&code_challenge_method=S256",
                "&code_challenge_method=plain",
            ),
            "invalid_request",
        ),
        (
            web_request("").replace(&format!("&code_challenge={}", challenge(VERIFIER)), ""),
            "invalid_request",
        ),
        (
            web_request("").replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            web_request("").replace("response_type=code&", ""),
            "invalid_request",
        ),
        (web_request("&scope=admin"), "invalid_request"),
        (
            web_request("").replace("scope=openid", "scope=admin+openid"),
            "invalid_scope",
        ),
        (web_request("&prompt=none+login"), "invalid_request"),
        (web_request("&max_age=soon"), "invalid_request"),
        (web_request("&request=eyJ"), "request_not_supported"),
        (
            web_request("&request_uri=urn%3Ax"),
            "request_uri_not_supported",
        ),
        (web_request("&prompt=none"), "login_required"),
    ];
    for (request, error) in cases {
        let reply = app.get(&request, None).await;
        assert_eq!(reply.status, StatusCode::FOUND, "{request}: {}", reply.text);
        let back = location(&reply);
        assert!(back.starts_with(WEB_CALLBACK), "{back}");
        let params = params_of(&back);
        assert_eq!(params["error"], error, "{request}");
        assert_eq!(params["state"], "xyz 123");
        assert_eq!(params["iss"], "http://127.0.0.1:8080");
        assert!(params.contains_key("error_description"));
    }
}

#[tokio::test]
async fn prompt_none_with_a_session_but_no_consent_is_consent_required() {
    let app = app();
    let mut browser = Browser::new(&app);
    app.register("ivy", "ivy@example.org").await;
    let start = browser.get(&web_request("")).await;
    let signed_in = browser.sign_in(&location(&start), "ivy").await;
    assert!(location(&signed_in).starts_with("/consent?"));
    let silent = browser.get(&web_request("&prompt=none")).await;
    assert_eq!(silent.status, StatusCode::FOUND);
    assert_eq!(params_of(&location(&silent))["error"], "consent_required");
}

#[tokio::test]
async fn deny_returns_access_denied() {
    let app = app();
    let mut browser = Browser::new(&app);
    app.register("joan", "joan@example.org").await;
    let start = browser.get(&web_request("")).await;
    let signed_in = browser.sign_in(&location(&start), "joan").await;
    let denied = browser.submit(&location(&signed_in), "decision=deny").await;
    assert_eq!(denied.status, StatusCode::SEE_OTHER);
    let params = params_of(&location(&denied));
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "xyz 123");
}

#[tokio::test]
async fn forms_without_the_browsers_csrf_token_are_403_and_change_nothing() {
    let app = app();
    let mut browser = Browser::new(&app);
    app.register("kim", "kim@example.org").await;
    let start = browser.get(&web_request("")).await;
    let page_path = location(&start);
    let page = browser.get(&page_path).await;
    let request = hidden(&page.text, "request");
    let credentials = format!("username=kim&password={}", encode(PASSWORD));
    for csrf in ["", "csrf_token=forged&"] {
        let reply = browser
            .post(
                "/sign-in",
                &format!("{csrf}request={request}&{credentials}"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{csrf}");
        assert!(reply.header("set-cookie").is_none(), "no session started");
    }
    // Another browser (no CSRF cookie) with the first one's token: refused too.
    let token = hidden(&page.text, "csrf_token");
    let mut stranger = Browser::new(&app);
    let reply = stranger
        .post(
            "/sign-in",
            &format!("csrf_token={token}&request={request}&{credentials}"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // The request is intact: the real browser still signs in.
    let signed_in = browser.sign_in(&page_path, "kim").await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text
    );
}

#[tokio::test]
async fn a_failed_sign_in_shows_one_alert_and_throttling_answers_429() {
    let app = app_with(|c| c.throttle.max_failures = 2);
    let mut browser = Browser::new(&app);
    app.register("lee", "lee@example.org").await;
    let start = browser.get(&web_request("")).await;
    let page = location(&start);
    for login in ["lee", "nobody-at-all"] {
        let reply = browser
            .submit(&page, &format!("username={login}&password=wrong-password"))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.text.contains(
            r#"<div class="alert" role="alert">Incorrect username, email or password.</div>"#
        ));
    }
    let _second = browser
        .submit(&page, "username=lee&password=wrong-again")
        .await;
    let locked = browser.sign_in(&page, "lee").await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.text
    );
    assert!(locked.header("retry-after").is_some());
    assert!(locked.text.contains("Try again in"));
}

#[tokio::test]
async fn create_account_page_registers_and_continues_the_flow() {
    let app = app();
    let mut browser = Browser::new(&app);
    let start = browser.get(&web_request("&prompt=create")).await;
    let page = location(&start);
    assert!(page.starts_with("/sign-up?request="), "{page}");
    let form = browser.get(&page).await;
    for label in ["Username", "Email", "Password"] {
        assert!(form.text.contains(&format!(">{label}</label>")), "{label}");
    }
    assert!(form.text.contains(">Create account</button>"));
    let weak = browser
        .submit(&page, "username=mo&email=not-an-email&password=password")
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(weak.text.contains(r#"id="email-error""#), "{}", weak.text);
    assert!(weak.text.contains(r#"role="alert""#));
    let created = browser
        .submit(
            &page,
            &format!(
                "username=mona&email=mona%40example.org&password={}",
                encode(PASSWORD)
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    assert!(location(&created).starts_with("/consent?"));
    let token = app.login("mona", PASSWORD).await;
    assert!(!token.is_empty());
    let taken = browser
        .submit(
            &format!("/sign-up?request={}", page.split('=').nth(1).unwrap()),
            &format!(
                "username=MONA&email=other%40example.org&password={}",
                encode(PASSWORD)
            ),
        )
        .await;
    assert!(
        taken.status == StatusCode::CONFLICT || taken.status == StatusCode::BAD_REQUEST,
        "{}",
        taken.status
    );
}

#[tokio::test]
async fn pages_are_never_cached_or_framed() {
    let app = app();
    let mut browser = Browser::new(&app);
    let start = browser.get(&web_request("")).await;
    let page = browser.get(&location(&start)).await;
    for reply in [&start, &page] {
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        let csp = reply.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        // One script, ours (passkeys): nothing inline, nothing from elsewhere.
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
    let expired = browser
        .get("/sign-in?request=00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST);
    assert!(expired.text.contains("expired"));
    let css = app.get("/ui/style.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.text.contains("prefers-color-scheme: dark"));
}

#[tokio::test]
async fn the_password_grant_and_the_legacy_client_can_be_switched_off() {
    let no_password = app_with(|c| c.oauth.password_grant = false);
    no_password.register("ned", "ned@example.org").await;
    let reply = no_password
        .post_form("/token", &common::password_form("ned", PASSWORD))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["error"], "unsupported_grant_type");

    let strict = app_with(|c| c.oauth.legacy_public_client = false);
    strict.register("ona", "ona@example.org").await;
    let reply = strict
        .post_form("/token", &common::password_form("ona", PASSWORD))
        .await;
    assert_eq!(reply.body["error"], "unauthorized_client");
    let reply = strict
        .post_form(
            "/token",
            &format!(
                "{}&client_id=unknown-app",
                common::password_form("ona", PASSWORD)
            ),
        )
        .await;
    assert_eq!(reply.body["error"], "unauthorized_client");
}

#[tokio::test]
async fn metadata_announces_the_authorization_endpoint() {
    let app = app();
    let meta = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .body;
    assert_eq!(
        meta["authorization_endpoint"],
        "http://127.0.0.1:8080/authorize"
    );
    assert_eq!(
        meta["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    let grants = meta["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&"authorization_code".into()));
}

#[tokio::test]
async fn concurrent_redemptions_of_one_code_have_one_winner() {
    let app = app();
    let code = code_for(&app, "pat").await;
    let auth = web_post_auth();
    let attempts = (0..8).map(|_| redeem(&app, &code, &auth));
    let replies = futures::future::join_all(attempts).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn signing_in_again_ends_the_browsers_previous_session() {
    let app = app();
    let mut browser = Browser::new(&app);
    app.register("quin", "quin@example.org").await;
    app.register("rhea", "rhea@example.org").await;
    let start = browser.get(&web_request("")).await;
    browser.sign_in(&location(&start), "quin").await;
    let old_cookie = browser.cookies["tessera_session"].clone();
    let again = browser.get(&web_request("&prompt=login")).await;
    browser.sign_in(&location(&again), "rhea").await;
    assert_ne!(browser.cookies["tessera_session"], old_cookie);
    let mut replay = Browser::new(&app);
    replay.cookies.insert("tessera_session".into(), old_cookie);
    let with_old = replay.get(&web_request("")).await;
    assert!(
        location(&with_old).starts_with("/sign-in?"),
        "the replaced session no longer signs anyone in"
    );
}

#[tokio::test]
async fn a_form_acts_on_the_store_not_on_a_replicas_copy_of_the_request() {
    let store = store_memory::MemoryStore::new();
    let config = || {
        let mut config = common::test_config();
        config.clients = clients();
        config
    };
    let a = TestApp::with_store(store.clone(), config());
    let b = TestApp::with_store(store, config());
    a.register("sal", "sal@example.org").await;
    let mut on_a = Browser::new(&a);
    let start = on_a.get(&web_request("")).await;
    let page_path = location(&start);
    let page = on_a.get(&page_path).await;
    assert_eq!(page.status, StatusCode::OK);
    // The same request is answered on replica b (signed in, then denied).
    let mut on_b = Browser::new(&b);
    let signed_in = on_b.sign_in(&page_path, "sal").await;
    let denied = on_b.submit(&location(&signed_in), "decision=deny").await;
    assert_eq!(denied.status, StatusCode::SEE_OTHER);
    // a still has its copy and may show the page, but its form is refused.
    let csrf = hidden(&page.text, "csrf_token");
    let request = hidden(&page.text, "request");
    let late = on_a
        .post(
            "/sign-in",
            &format!(
                "csrf_token={csrf}&request={request}&username=sal&password={}",
                encode(PASSWORD)
            ),
        )
        .await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST, "{}", late.text);
    assert!(late.text.contains("expired"));
    assert!(late.header("set-cookie").is_none(), "no session started");
}
