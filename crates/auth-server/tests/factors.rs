//! Second factors through the pages, in-process on the memory store: the
//! account page, an authenticator app enrolled from its setup page (codes
//! computed by this test's own RFC 6238 implementation, not the server's),
//! the second sign-in step, recovery codes, the throttle, `amr`, and the
//! password grant's refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/totp.rs"]
mod totp;

use std::collections::BTreeMap;

use common::browser::{challenge, hidden, location, params_of, Browser};
use common::{encode, password_form, Reply, TestApp, PASSWORD};
use poem::http::StatusCode;
use serde_json::Value;

const CALLBACK: &str = "https://rp.example/cb";
const VERIFIER: &str = "factor-verifier-factor-verifier-factor-verifier-01";
const SECRET: &str = "relying-party-secret-at-least-32-characters";

fn app() -> TestApp {
    let mut config = common::test_config();
    config.clients = vec![auth_core::ClientRegistration {
        id: "rp".into(),
        name: Some("Relying Party".into()),
        secret: Some(SECRET.into()),
        redirect_uris: vec![CALLBACK.into()],
        first_party: true,
        ..auth_core::ClientRegistration::default()
    }];
    config.throttle.max_failures = 5;
    TestApp::with_config(config)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The value of `data-secret` on the setup page, and the otpauth URI.
fn setup_secret(page: &str) -> (String, String) {
    let between = |start: &str, end: &str| {
        let from = page
            .find(start)
            .unwrap_or_else(|| panic!("{start} in {page}"))
            + start.len();
        page[from..].split(end).next().unwrap().to_owned()
    };
    let secret = between("data-secret>", "<");
    let uri = between(r#"<a href=""#, "\"")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/");
    (secret, uri)
}

/// Posts a page's form (its CSRF token) with `fields`.
async fn post_form(browser: &mut Browser<'_>, page: &Reply, action: &str, fields: &str) -> Reply {
    let csrf = hidden(&page.text, "csrf_token");
    browser
        .post(action, &format!("csrf_token={csrf}&{fields}"))
        .await
}

/// Signs `username` in to the account page (no application involved).
async fn account_browser<'a>(app: &'a TestApp, username: &str) -> Browser<'a> {
    let mut browser = Browser::new(app);
    let entry = browser.get("/account").await;
    assert_eq!(entry.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&entry), "/sign-in");
    let page = browser.get("/sign-in").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let reply = post_form(
        &mut browser,
        &page,
        "/sign-in",
        &format!("username={username}&password={}", encode(PASSWORD)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    assert_eq!(location(&reply), "/account", "back to the account page");
    browser
}

/// Enrols an authenticator app; the secret and the recovery codes.
async fn enrol(browser: &mut Browser<'_>) -> (String, Vec<String>) {
    let account = browser.get("/account").await;
    assert!(
        account.text.contains("Set up authenticator app"),
        "{}",
        account.text
    );
    let setup = browser.get("/account/totp").await;
    assert_eq!(setup.status, StatusCode::OK);
    assert!(setup.text.contains(r#"<label for="code">Code</label>"#));
    assert!(
        setup.text.contains(r#"<img class="qr" src="data:image"#),
        "a QR code"
    );
    let (secret, uri) = setup_secret(&setup.text);
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let enrolment = hidden(&setup.text, "enrolment");

    let wrong = post_form(
        browser,
        &setup,
        "/account/totp",
        &format!("enrolment={enrolment}&code=000000"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    assert!(wrong.text.contains("not right"));
    // The wrong code's page holds a new secret; the first is gone.
    let (secret, _) = setup_secret(&wrong.text);
    let enrolment = hidden(&wrong.text, "enrolment");
    let code = totp::code(&secret, now());
    let done = post_form(
        browser,
        &wrong,
        "/account/totp",
        &format!("enrolment={enrolment}&code={code}"),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains("Your recovery codes"));
    let codes: Vec<String> = done
        .text
        .split("<li><code>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{}", done.text);
    let account = browser.get("/account").await;
    assert!(account.text.contains("Authenticator app"));
    assert!(account.text.contains("10 of 10 left"));
    assert!(!account.text.contains("Set up authenticator app"));
    (secret, codes)
}

fn authorize_url() -> String {
    format!(
        "/authorize?response_type=code&client_id=rp&redirect_uri={}&scope=openid&state=s\
         &code_challenge={}&code_challenge_method=S256&nonce=n",
        encode(CALLBACK),
        challenge(VERIFIER)
    )
}

/// Starts a code flow and enters the password: the reply to the password.
async fn password_step(browser: &mut Browser<'_>, username: &str) -> Reply {
    let start = browser.get(&authorize_url()).await;
    browser.sign_in(&location(&start), username).await
}

async fn second_step(browser: &mut Browser<'_>, code: &str) -> Reply {
    let page = browser.get("/sign-in/factor").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains(r#"<label for="code">Code</label>"#));
    post_form(
        browser,
        &page,
        "/sign-in/factor",
        &format!("code={}", encode(code)),
    )
    .await
}

async fn redeem(app: &TestApp, redirect: &str) -> Value {
    let params: BTreeMap<String, String> = params_of(redirect);
    let reply = app
        .post_form(
            "/token",
            &format!(
                "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}\
                 &client_id=rp&client_secret={SECRET}",
                encode(&params["code"]),
                encode(CALLBACK)
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body
}

fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn an_app_enrolled_on_the_account_page_guards_every_sign_in() {
    let app = app();
    app.register("ada", "ada@example.org").await;
    let mut browser = account_browser(&app, "ada").await;
    let (secret, _) = enrol(&mut browser).await;

    // The password alone no longer signs in: the second step, by cookie.
    let mut other = Browser::new(&app);
    let reply = password_step(&mut other, "ada").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    assert_eq!(location(&reply), "/sign-in/factor");
    assert!(reply
        .header("set-cookie")
        .unwrap_or_default()
        .contains("tessera_mfa="));
    // The code that confirmed the app was used: the next step's code works.
    let used = totp::code(&secret, now());
    let refused = second_step(&mut other, &used).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "a code counts once: {}",
        refused.text
    );
    let next = totp::code(&secret, now() + 30);
    let back = second_step(&mut other, &next).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.text);
    let redirect = location(&back);
    assert!(redirect.starts_with(CALLBACK), "{redirect}");
    let tokens = redeem(&app, &redirect).await;
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]), "{id}");

    // The same code again, in a third browser: refused (replay).
    let mut third = Browser::new(&app);
    password_step(&mut third, "ada").await;
    let replay = second_step(&mut third, &next).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    // The finished step cannot be answered twice either.
    let again = other.get("/sign-in/factor").await;
    assert_eq!(again.status, StatusCode::GONE, "{}", again.text);
}

#[tokio::test]
async fn recovery_codes_sign_in_once_and_new_ones_replace_them() {
    let app = app();
    app.register("bob", "bob@example.org").await;
    let mut browser = account_browser(&app, "bob").await;
    let (_, codes) = enrol(&mut browser).await;

    let mut phone_lost = Browser::new(&app);
    password_step(&mut phone_lost, "bob").await;
    let back = second_step(&mut phone_lost, &codes[0].to_uppercase()).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.text);
    let id = claims(
        redeem(&app, &location(&back)).await["id_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));

    let mut again = Browser::new(&app);
    password_step(&mut again, "bob").await;
    let reused = second_step(&mut again, &codes[0]).await;
    assert_eq!(
        reused.status,
        StatusCode::UNAUTHORIZED,
        "each code works once"
    );
    let account = browser.get("/account").await;
    assert!(account.text.contains("9 of 10 left"), "{}", account.text);

    let fresh = post_form(&mut browser, &account, "/account/recovery-codes", "").await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert!(fresh.text.contains("Your recovery codes"));
    let back = second_step(&mut again, &codes[1]).await;
    assert_eq!(
        back.status,
        StatusCode::UNAUTHORIZED,
        "old codes stop working"
    );
}

#[tokio::test]
async fn wrong_codes_count_toward_the_account_throttle() {
    let app = app();
    app.register("cyd", "cyd@example.org").await;
    let mut browser = account_browser(&app, "cyd").await;
    let (secret, _) = enrol(&mut browser).await;
    let mut attacker = Browser::new(&app);
    password_step(&mut attacker, "cyd").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(second_step(&mut attacker, "123456").await.status);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Locked: even the right code waits.
    let right = second_step(&mut attacker, &totp::code(&secret, now() + 30)).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_password_grant_refuses_an_account_with_a_second_factor() {
    let app = app();
    app.register("dif", "dif@example.org").await;
    let before = app
        .post_form("/token", &password_form("dif", PASSWORD))
        .await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    let mut browser = account_browser(&app, "dif").await;
    enrol(&mut browser).await;
    let after = app
        .post_form("/token", &password_form("dif", PASSWORD))
        .await;
    assert_eq!(after.status, StatusCode::BAD_REQUEST, "{}", after.text);
    assert_eq!(after.body["error"], "invalid_grant");
    assert!(
        after.body["error_description"]
            .as_str()
            .unwrap()
            .contains("browser"),
        "{}",
        after.text
    );
    // A wrong password still reads as a wrong password (nothing disclosed).
    let wrong = app
        .post_form("/token", &password_form("dif", "not the password"))
        .await;
    assert_eq!(
        wrong.body["error_description"],
        "invalid username or password"
    );
}

#[tokio::test]
async fn the_account_page_lists_sessions_and_signs_them_out() {
    let app = app();
    app.register("eddy", "eddy@example.org").await;
    let refresh = app
        .post_form("/token", &password_form("eddy", PASSWORD))
        .await
        .body;
    let mut browser = account_browser(&app, "eddy").await;
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.text.contains("This browser"), "{}", account.text);
    assert!(account.text.contains("Change password"));
    let app_session = account
        .text
        .split(r#"name="session" value=""#)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .find(|value| value.starts_with("api:"))
        .expect("the app session is listed");
    let ended = post_form(
        &mut browser,
        &account,
        "/account/sessions/end",
        &format!("session={app_session}"),
    )
    .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    let refused = app
        .post_form(
            "/token",
            &format!(
                "grant_type=refresh_token&refresh_token={}",
                refresh["refresh_token"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "the session ended");

    // Someone else's session id is "not found", never ended.
    let stranger = format!("api:{}", uuid::Uuid::now_v7());
    let account = browser.get("/account").await;
    let missing = post_form(
        &mut browser,
        &account,
        "/account/sessions/end",
        &format!("session={stranger}"),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Changing the password keeps this browser signed in (with a new cookie).
    let changed = post_form(
        &mut browser,
        &account,
        "/account/password",
        &format!(
            "current_password={}&new_password={}",
            encode(PASSWORD),
            encode("a brand new passphrase")
        ),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert!(changed.text.contains("Your password was changed"));
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);
    let wrong = post_form(
        &mut browser,
        &changed,
        "/account/password",
        "current_password=nope&new_password=whatever-else-long",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn removing_the_app_turns_the_second_step_off() {
    let app = app();
    app.register("fay", "fay@example.org").await;
    let mut browser = account_browser(&app, "fay").await;
    enrol(&mut browser).await;
    let account = browser.get("/account").await;
    let factor = account
        .text
        .split(r#"name="factor" value=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let removed = post_form(
        &mut browser,
        &account,
        "/account/factors/remove",
        &format!("factor={factor}"),
    )
    .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    let account = browser.get("/account").await;
    assert!(account.text.contains("Set up authenticator app"));
    assert!(
        !account.text.contains("Recovery codes"),
        "they went with the last factor"
    );
    let grant = app
        .post_form("/token", &password_form("fay", PASSWORD))
        .await;
    assert_eq!(grant.status, StatusCode::OK);
    let mut fresh = Browser::new(&app);
    let reply = password_step(&mut fresh, "fay").await;
    assert!(location(&reply).starts_with(CALLBACK), "no second step");
}

#[tokio::test]
async fn forged_account_forms_change_nothing() {
    let app = app();
    app.register("gus", "gus@example.org").await;
    let mut browser = account_browser(&app, "gus").await;
    let reply = browser
        .post("/account/recovery-codes", "csrf_token=forged")
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = browser
        .post(
            "/account/password",
            "csrf_token=forged&current_password=x&new_password=y",
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let mut signed_out = Browser::new(&app);
    let reply = signed_out
        .post("/account/totp", "csrf_token=x&code=1")
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SEE_OTHER,
        "signed out: to the sign-in page"
    );
}

#[tokio::test]
async fn the_account_page_asks_for_an_email_change_by_link() {
    let app = app();
    app.register("hana", "hana@example.org").await;
    app.register("ivo", "ivo@example.org").await;
    let mut browser = account_browser(&app, "hana").await;
    let account = browser.get("/account").await;
    assert!(account
        .text
        .contains(r#"<label for="new_email">New email</label>"#));
    let wrong = post_form(
        &mut browser,
        &account,
        "/account/email",
        "new_email=hana%40new.example&password=nope",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let taken = post_form(
        &mut browser,
        &account,
        "/account/email",
        &format!("new_email=ivo%40example.org&password={}", encode(PASSWORD)),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
    let asked = post_form(
        &mut browser,
        &account,
        "/account/email",
        &format!("new_email=hana%40new.example&password={}", encode(PASSWORD)),
    )
    .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.text);
    assert!(
        asked.text.contains("We sent a link to hana@new.example"),
        "{}",
        asked.text
    );
    // Unchanged until the link is opened.
    assert!(asked.text.contains("hana@example.org"));
}
