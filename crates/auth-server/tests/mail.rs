//! Mail in process (memory store), delivered to a real SMTP server
//! (aiosmtpd): verification, reset, email change, notices, scanner-safe
//! links, limits, and an SMTP outage. The same flows across replicas and
//! the database stores are in `e2e/mail.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use auth_core::mail::deliver_due;
use auth_core::refresh::OpaqueToken;
use auth_core::{DeliveryReport, EmailLink, LinkPurpose, MailStore, OutgoingMail};
use auth_server::config::Config;
use auth_server::mail::config::{SmtpSecurity, TransportKind};
use auth_server::mail::Sender;
use common::browser::{hidden, Browser};
use common::smtp::{Delivered, Smtp};
use common::{encode, Reply, TestApp, PASSWORD};
use poem::http::{Method, StatusCode};
use poem::Request;
use serde_json::json;

/// The test settings, sending mail to `smtp`.
fn config_for(smtp: &Smtp) -> Config {
    let mut config = common::test_config();
    config.mail.transport = TransportKind::Smtp;
    config.mail.from = "Tessera Test <accounts@tessera.test>".into();
    config.mail.smtp.host = "127.0.0.1".into();
    config.mail.smtp.port = Some(smtp.port);
    config.mail.smtp.security = SmtpSecurity::None;
    config.mail.smtp.timeout = Duration::from_secs(3);
    config.mail.retry_min = Duration::from_millis(100);
    config.mail.retry_max = Duration::from_millis(200);
    config
}

struct MailApp {
    app: TestApp,
    sender: Sender,
    config: Config,
}

impl MailApp {
    fn new(config: Config) -> Self {
        Self {
            app: TestApp::with_config(config.clone()),
            sender: Sender::from_config(&config).unwrap(),
            config,
        }
    }

    /// One round of the sender loop (what every replica runs in the background).
    async fn deliver(&self) -> DeliveryReport {
        deliver_due(
            self.app.state.service.store(),
            &self.sender,
            &self.config.mail.delivery_policy(),
        )
        .await
        .unwrap()
    }

    /// Delivers until `to` has `count` messages; returns them.
    async fn mail_to(&self, smtp: &Smtp, to: &str, count: usize) -> Vec<Delivered> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while smtp.messages_to(to).len() < count && Instant::now() < deadline {
            self.deliver().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        smtp.wait_for(to, count).await
    }

    async fn register(&self, name: &str) -> Reply {
        let reply = self
            .app
            .register(name, &format!("{name}@example.org"))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply
    }

    async fn me(&self, token: &str) -> Reply {
        self.app.get("/users/me", Some(token)).await
    }

    async fn post_json_as(&self, path: &str, token: &str, body: serde_json::Value) -> Reply {
        self.app
            .send(
                Request::builder()
                    .method(Method::POST)
                    .uri_str(path)
                    .header("authorization", format!("Bearer {token}"))
                    .content_type("application/json")
                    .body(body.to_string()),
            )
            .await
    }

    async fn forgot(&self, email: &str) -> Reply {
        self.app
            .post_json("/password/forgot", &json!({ "email": email }).to_string())
            .await
    }
}

/// Opens a link's page and presses its button with `fields`.
async fn press(browser: &mut Browser<'_>, link_path: &str, fields: &str) -> Reply {
    let page = browser.get(link_path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = hidden(&page.text, "csrf_token");
    let token = hidden(&page.text, "token");
    let action = link_path.split('?').next().unwrap();
    browser
        .post(action, &format!("csrf_token={csrf}&token={token}&{fields}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_sends_a_verification_link_that_scanners_cannot_spend() {
    let smtp = Smtp::start();
    let mail = MailApp::new(config_for(&smtp));
    mail.register("vera").await;
    let token = mail.app.login("vera", PASSWORD).await;
    assert_eq!(mail.me(&token).await.body["email_verified"], false);

    let message = mail.mail_to(&smtp, "vera@example.org", 1).await.remove(0);
    assert_eq!(message.from, "accounts@tessera.test");
    assert!(
        message.subject.contains("Confirm your email"),
        "{message:?}"
    );
    assert!(
        message.html.contains(&message.token()),
        "the HTML part has the link"
    );
    let link = message.link_path();
    assert!(link.starts_with("/email/confirm?token="), "{link}");

    // What a mail scanner does: GET and HEAD, as often as it likes.
    let mut scanner = Browser::new(&mail.app);
    for _ in 0..2 {
        let page = scanner.get(&link).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.text.contains(">Confirm email</button>"),
            "{}",
            page.text
        );
        assert_eq!(page.header("cache-control"), Some("no-store"));
    }
    let head = mail
        .app
        .send(
            Request::builder()
                .method(Method::HEAD)
                .uri_str(&link)
                .finish(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(
        mail.me(&token).await.body["email_verified"],
        false,
        "not spent"
    );

    // A forged POST (no CSRF cookie) changes nothing.
    let forged = mail
        .app
        .post_form(
            "/email/confirm",
            &format!("csrf_token=x&token={}", message.token()),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(mail.me(&token).await.body["email_verified"], false);

    let mut person = Browser::new(&mail.app);
    let page = person.get(&link).await;
    let form = format!(
        "csrf_token={}&token={}",
        hidden(&page.text, "csrf_token"),
        message.token()
    );
    let done = person.post("/email/confirm", &form).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains("confirmed"));
    assert_eq!(mail.me(&token).await.body["email_verified"], true);

    let reused = person.post("/email/confirm", &form).await;
    assert_eq!(reused.status, StatusCode::GONE, "a link is spent once");
    let again = person.get(&link).await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.text.contains("already used"), "{}", again.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_delays_mail_and_loses_none() {
    let mut smtp = Smtp::stopped();
    let mail = MailApp::new(config_for(&smtp));
    for name in ["out1", "out2", "out3"] {
        mail.register(name).await;
    }
    let down = mail.deliver().await;
    assert_eq!((down.sent, down.retried), (0, 3), "{down:?}");
    smtp.run();
    for name in ["out1", "out2", "out3"] {
        mail.mail_to(&smtp, &format!("{name}@example.org"), 1).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = mail.deliver().await;
    assert_eq!(after.claimed(), 0, "nothing left: {after:?}");
    let delivered = smtp.messages();
    assert_eq!(
        delivered.len(),
        3,
        "each message exactly once: {delivered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_link_sets_a_new_password_and_ends_every_session() {
    let smtp = Smtp::start();
    let mail = MailApp::new(config_for(&smtp));
    mail.register("rita").await;
    let login = mail
        .app
        .post_form("/token", &common::password_form("rita", PASSWORD))
        .await;
    let access = login.body["access_token"].as_str().unwrap().to_owned();
    let refresh = login.body["refresh_token"].as_str().unwrap().to_owned();

    let accepted = mail.forgot("Rita@Example.org").await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    let reset = mail
        .mail_to(&smtp, "rita@example.org", 2)
        .await
        .into_iter()
        .find(|m| m.subject.contains("Reset"))
        .expect("a reset message");
    let link = reset.link_path();
    assert!(link.starts_with("/password/reset?token="), "{link}");

    let mut person = Browser::new(&mail.app);
    let page = person.get(&link).await;
    assert!(page
        .text
        .contains(r#"<label for="new_password">New password</label>"#));
    assert!(page.text.contains(">Set new password</button>"));
    let weak = press(&mut person, &link, "new_password=password").await;
    assert_eq!(
        weak.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        weak.text
    );
    assert_eq!(
        mail.me(&access).await.status,
        StatusCode::OK,
        "a refused password changes nothing"
    );

    let new_password = "a fresh reset passphrase";
    let done = press(
        &mut person,
        &link,
        &format!("new_password={}", encode(new_password)),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(mail.me(&access).await.status, StatusCode::UNAUTHORIZED);
    let refreshed = mail
        .app
        .post_form(
            "/token",
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::BAD_REQUEST);
    assert_eq!(refreshed.body["error"], "invalid_grant");
    let old = mail
        .app
        .post_form("/token", &common::password_form("rita", PASSWORD))
        .await;
    assert_eq!(old.status, StatusCode::BAD_REQUEST);
    mail.app.login("rita", new_password).await;

    let notices = mail.mail_to(&smtp, "rita@example.org", 3).await;
    assert!(notices
        .iter()
        .any(|m| m.subject.contains("password was changed")));

    let spent = person.get(&link).await;
    assert_eq!(spent.status, StatusCode::GONE);
    assert!(
        spent.text.contains("Ask for a new reset link"),
        "offers the next step: {}",
        spent.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_unknown_links_say_so_and_offer_the_next_step() {
    let smtp = Smtp::start();
    let mail = MailApp::new(config_for(&smtp));
    mail.register("ezra").await;
    let user = mail.app.state.service.find_user("ezra").await.unwrap();
    let token = OpaqueToken::generate();
    let past = chrono::Utc::now() - chrono::Duration::minutes(5);
    let link = EmailLink {
        digest: token.digest(),
        purpose: LinkPurpose::ResetPassword,
        user_id: user.id,
        email: user.email.clone(),
        created_at: past - chrono::Duration::hours(1),
        expires_at: past,
        used_at: None,
    };
    let message = OutgoingMail {
        id: uuid::Uuid::now_v7(),
        to: user.email.clone(),
        subject: "old".into(),
        text: "old".into(),
        html: "old".into(),
        created_at: past,
    };
    mail.app
        .state
        .service
        .store()
        .create_email_link(&link, &message)
        .await
        .unwrap();
    let path = format!("/password/reset?token={}", token.expose());
    let mut browser = Browser::new(&mail.app);
    let expired = browser.get(&path).await;
    assert_eq!(expired.status, StatusCode::GONE);
    assert!(expired.text.contains("expired"), "{}", expired.text);
    assert!(expired.text.contains("Ask for a new reset link"));

    let unknown = browser.get("/password/reset?token=not-a-token").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.text.contains("not valid"));
    let wrong_page = browser
        .get(&format!("/email/confirm?token={}", token.expose()))
        .await;
    assert_eq!(
        wrong_page.status,
        StatusCode::NOT_FOUND,
        "a reset link is no confirmation link"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_answers_alike_for_known_and_unknown_addresses() {
    let smtp = Smtp::start();
    let mut config = config_for(&smtp);
    config.mail.forgot_per_address.max = 1000;
    config.mail.forgot_per_client.max = 1000;
    let mail = MailApp::new(config);
    mail.register("kim").await;
    let known = mail.forgot("kim@example.org").await;
    let unknown = mail.forgot("nobody@example.org").await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!(unknown.status, known.status);
    assert_eq!(unknown.text, known.text, "same body");

    let mut known_times = Vec::new();
    let mut unknown_times = Vec::new();
    for _ in 0..41 {
        // Interleaved, so drift in machine load hits both alike.
        for (address, samples) in [
            ("kim@example.org", &mut known_times),
            ("nobody@example.org", &mut unknown_times),
        ] {
            let started = Instant::now();
            let reply = mail.forgot(address).await;
            samples.push(started.elapsed());
            assert_eq!(reply.status, StatusCode::ACCEPTED);
            // The known address's message is written 10-50 ms after the
            // answer: let it finish, so each request starts from idle.
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let ratio = median(&mut unknown_times) / median(&mut known_times);
    eprintln!("timing: /password/forgot unknown/known median ratio {ratio:.3}");
    assert!(
        (0.8..=1.25).contains(&ratio),
        "unknown/known median ratio {ratio:.3}"
    );

    mail.mail_to(&smtp, "kim@example.org", 2).await;
    assert!(smtp.messages_to("nobody@example.org").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_limits_each_address_and_each_client() {
    let smtp = Smtp::start();
    let mut config = config_for(&smtp);
    config.mail.forgot_per_address.max = 2;
    config.mail.forgot_per_client.max = 7;
    let mail = MailApp::new(config);
    mail.register("lena").await;
    for address in ["lena@example.org", "ghost@example.org"] {
        for _ in 0..2 {
            assert_eq!(mail.forgot(address).await.status, StatusCode::ACCEPTED);
        }
        let limited = mail.forgot(address).await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{address}");
        let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
        assert!(wait > 0 && wait <= 3600, "{wait}");
        assert_eq!(
            limited.header("content-type"),
            Some("application/problem+json")
        );
    }
    // Six requests so far from one client address (every request counts,
    // refused ones too): the seventh is the client's last.
    assert_eq!(
        mail.forgot("third@example.org").await.status,
        StatusCode::ACCEPTED
    );
    let client_limited = mail.forgot("fourth@example.org").await;
    assert_eq!(client_limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        mail.forgot("not an address").await.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a malformed address is a 422, before any limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_verification_is_limited_and_pointless_once_verified() {
    let smtp = Smtp::start();
    let mut config = config_for(&smtp);
    config.mail.resend_limit.max = 2;
    let mail = MailApp::new(config);
    mail.register("ravi").await;
    let token = mail.app.login("ravi", PASSWORD).await;
    for _ in 0..2 {
        let sent = mail
            .post_json_as("/users/me/email/verification", &token, json!({}))
            .await;
        assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
    }
    let limited = mail
        .post_json_as("/users/me/email/verification", &token, json!({}))
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());

    let messages = mail.mail_to(&smtp, "ravi@example.org", 3).await;
    let mut browser = Browser::new(&mail.app);
    let done = press(&mut browser, &messages[2].link_path(), "").await;
    assert_eq!(done.status, StatusCode::OK);
    let verified = mail
        .post_json_as("/users/me/email/verification", &token, json!({}))
        .await;
    assert_eq!(verified.status, StatusCode::CONFLICT);
    let unauthenticated = mail
        .app
        .post_json("/users/me/email/verification", "{}")
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_verified_email_refuses_sign_in_until_the_link_is_followed() {
    let smtp = Smtp::start();
    let mut config = config_for(&smtp);
    config.accounts.require_verified_email = true;
    let mail = MailApp::new(config);
    mail.register("una").await;
    let refused = mail
        .app
        .post_form("/token", &common::password_form("una", PASSWORD))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.body["error"], "invalid_grant");
    assert!(refused.body["error_description"]
        .as_str()
        .unwrap()
        .contains("not verified"));
    let wrong = mail
        .app
        .post_form("/token", &common::password_form("una", "not the password"))
        .await;
    assert_eq!(
        wrong.body["error_description"], "invalid username or password",
        "the hint is only for the right password"
    );
    let message = mail.mail_to(&smtp, "una@example.org", 1).await.remove(0);
    let mut browser = Browser::new(&mail.app);
    assert_eq!(
        press(&mut browser, &message.link_path(), "").await.status,
        StatusCode::OK
    );
    mail.app.login("una", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_change_is_confirmed_by_the_new_address_and_told_to_the_old() {
    let smtp = Smtp::start();
    let mail = MailApp::new(config_for(&smtp));
    mail.register("carl").await;
    mail.register("dora").await;
    let token = mail.app.login("carl", PASSWORD).await;
    let change =
        |password: &str, email: &str| json!({ "current_password": password, "new_email": email });
    let wrong = mail
        .post_json_as(
            "/users/me/email",
            &token,
            change("not it", "carl@new.example"),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let taken = mail
        .post_json_as(
            "/users/me/email",
            &token,
            change(PASSWORD, "Dora@Example.org"),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let invalid = mail
        .post_json_as("/users/me/email", &token, change(PASSWORD, "no-at-sign"))
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let accepted = mail
        .post_json_as(
            "/users/me/email",
            &token,
            change(PASSWORD, "Carl@New.example"),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    assert_eq!(
        mail.me(&token).await.body["email"],
        "carl@example.org",
        "unchanged until confirmed"
    );
    let confirm = mail.mail_to(&smtp, "carl@new.example", 1).await.remove(0);
    assert!(confirm.subject.contains("new email"), "{confirm:?}");
    let mut browser = Browser::new(&mail.app);
    let page = browser.get(&confirm.link_path()).await;
    assert!(page.text.contains("Carl@New.example"), "{}", page.text);
    let done = press(&mut browser, &confirm.link_path(), "").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let me = mail.me(&token).await.body;
    assert_eq!(me["email"], "Carl@New.example");
    assert_eq!(me["email_verified"], true);
    let notice = mail
        .mail_to(&smtp, "carl@example.org", 2)
        .await
        .into_iter()
        .find(|m| m.subject.contains("email address was changed"))
        .expect("the old address is told");
    assert!(notice.text.contains("Carl@New.example"));
    mail.app.login("Carl@New.example", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_is_told_by_mail() {
    let smtp = Smtp::start();
    let mail = MailApp::new(config_for(&smtp));
    mail.register("pam").await;
    let token = mail.app.login("pam", PASSWORD).await;
    let changed = mail
        .post_json_as(
            "/users/me/password",
            &token,
            json!({ "current_password": PASSWORD, "new_password": "another good passphrase" }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    let messages = mail.mail_to(&smtp, "pam@example.org", 2).await;
    assert!(messages
        .iter()
        .any(|m| m.subject.contains("password was changed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_page_links_to_a_forgot_password_page_that_works_without_script() {
    let smtp = Smtp::start();
    let mail = MailApp::new(config_for(&smtp));
    mail.register("fay").await;
    let mut browser = Browser::new(&mail.app);
    let page = browser.get("/forgot-password").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains(r#"<label for="email">Email</label>"#));
    assert!(page.text.contains(">Send reset link</button>"));
    let csrf = hidden(&page.text, "csrf_token");
    let sent = browser
        .post(
            "/forgot-password",
            &format!("csrf_token={csrf}&email=fay%40example.org"),
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    assert!(sent.text.contains("Check your email"));
    let unknown = browser
        .post(
            "/forgot-password",
            &format!("csrf_token={csrf}&email=nobody%40example.org"),
        )
        .await;
    assert_eq!(
        unknown.text, sent.text,
        "the same page for an unknown address"
    );
    let forged = mail
        .app
        .post_form("/forgot-password", "csrf_token=x&email=fay%40example.org")
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    mail.mail_to(&smtp, "fay@example.org", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_and_id_tokens_say_whether_the_address_was_verified() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let smtp = Smtp::start();
    let mut config = config_for(&smtp);
    config.tokens.scopes = vec!["openid".into(), "email".into()];
    let mail = MailApp::new(config);
    mail.register("iris").await;
    let claims = || async {
        let grant = mail
            .app
            .post_form(
                "/token",
                &format!(
                    "{}&scope=openid%20email",
                    common::password_form("iris", PASSWORD)
                ),
            )
            .await;
        assert_eq!(grant.status, StatusCode::OK, "{}", grant.text);
        let id_token = grant.body["id_token"].as_str().unwrap();
        let payload = id_token.split('.').nth(1).unwrap();
        let id_claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let access = grant.body["access_token"].as_str().unwrap();
        let userinfo = mail.app.get("/userinfo", Some(access)).await.body;
        (
            id_claims["email_verified"].clone(),
            userinfo["email_verified"].clone(),
        )
    };
    assert_eq!(claims().await, (json!(false), json!(false)));
    let message = mail.mail_to(&smtp, "iris@example.org", 1).await.remove(0);
    let mut browser = Browser::new(&mail.app);
    assert_eq!(
        press(&mut browser, &message.link_path(), "").await.status,
        StatusCode::OK
    );
    assert_eq!(claims().await, (json!(true), json!(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_made_in_a_flow_gets_its_message_in_the_flows_language() {
    let smtp = Smtp::start();
    let templates = tempfile::tempdir().unwrap();
    let french = templates.path().join("mail/fr");
    std::fs::create_dir_all(&french).unwrap();
    std::fs::write(
        french.join("verify_email.txt"),
        "Subject: Confirmez votre adresse\n\nBonjour {{ username }}, ouvrez {{ link }}\n",
    )
    .unwrap();
    std::fs::write(
        french.join("verify_email.html"),
        "<html><p>Bonjour {{ username }}</p><a href=\"{{ link }}\">Confirmer</a></html>",
    )
    .unwrap();
    let mut config = config_for(&smtp);
    config.ui.templates_dir = Some(templates.path().to_owned());
    config.clients = vec![auth_core::ClientRegistration {
        id: "web".into(),
        name: Some("Web".into()),
        redirect_uris: vec!["https://web.example/callback".into()],
        first_party: true,
        ..auth_core::ClientRegistration::default()
    }];
    let mail = MailApp::new(config);
    let mut browser = Browser::new(&mail.app);
    let start = browser
        .get(&format!(
            "/authorize?response_type=code&client_id=web&redirect_uri={}&scope=openid\
             &code_challenge={}&code_challenge_method=S256&ui_locales=fr-CA+en",
            encode("https://web.example/callback"),
            common::browser::challenge("a-verifier-a-verifier-a-verifier-a-verifier")
        ))
        .await;
    let sign_in = common::browser::location(&start);
    let sign_up = sign_in.replace("/sign-in", "/sign-up");
    let created = browser
        .submit(
            &sign_up,
            &format!(
                "username=zoe&email=zoe%40example.org&password={}",
                encode(PASSWORD)
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let message = mail.mail_to(&smtp, "zoe@example.org", 1).await.remove(0);
    assert_eq!(message.subject, "Confirmez votre adresse");
    assert!(message.text.contains("Bonjour zoe"), "{}", message.text);
    assert!(message.link_path().starts_with("/email/confirm?token="));

    // Without a translation for the reader, English.
    mail.app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri_str("/users")
                .header("accept-language", "de-DE, de;q=0.9")
                .content_type("application/json")
                .body(
                    json!({"username": "udo", "email": "udo@example.org", "password": PASSWORD})
                        .to_string(),
                ),
        )
        .await;
    let english = mail.mail_to(&smtp, "udo@example.org", 1).await.remove(0);
    assert!(
        english.subject.starts_with("Confirm your email"),
        "{english:?}"
    );
}
