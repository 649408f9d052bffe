//! Second factors against the real binary, on every store: an app set up on
//! one replica guards sign-ins on all of them (password on one, code on
//! another), the password grant refuses the account, and `tessera user
//! reset-factors` removes the factors and ends every session.

use crate::code_flow::Browser;
use crate::support::*;
use crate::totp;

pub async fn second_factor_across_replicas(env: &[(&str, String)]) {
    let servers = [Server::start(env), Server::start(env)];
    let [a, b] = &servers;
    assert_eq!(a.register("tomas").await, StatusCode::CREATED);
    let password = [("username", "tomas"), ("password", PASSWORD)];

    // Signed in to the account page on a; the app set up through b and a.
    let mut owner = Browser::new();
    let signed_in = owner.submit(a, b, "/sign-in", &password).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text
    );
    assert_eq!(signed_in.location.as_deref(), Some("/account"));
    let setup = owner.get(b, "/account/totp").await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.text);
    let secret = totp::secret_on_page(&setup.text);
    let code = totp::code_at(&secret, 0);
    let done = owner
        .post_page_form(
            &setup,
            a,
            "/account/totp",
            &["enrolment"],
            &[("code", &code)],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains("Your recovery codes"), "{}", done.text);

    let refused = a.login("tomas").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // Password on a, the second step shown by b, answered to a.
    let mut visitor = Browser::new();
    let step = visitor.submit(a, a, "/sign-in", &password).await;
    assert_eq!(
        step.location.as_deref(),
        Some("/sign-in/factor"),
        "{}",
        step.text
    );
    let replayed = visitor
        .submit_carrying(b, a, "/sign-in/factor", &[], &[("code", &code)])
        .await;
    assert_eq!(
        replayed.status,
        StatusCode::UNAUTHORIZED,
        "a code counts once"
    );
    let next = totp::code_at(&secret, 30);
    let through = visitor
        .submit_carrying(b, a, "/sign-in/factor", &[], &[("code", &next)])
        .await;
    assert_eq!(through.status, StatusCode::SEE_OTHER, "{}", through.text);
    assert_eq!(through.location.as_deref(), Some("/account"));
    assert_eq!(visitor.get(b, "/account").await.status, StatusCode::OK);

    // The operator resets the factors: every session ends, the password
    // grant works again.
    let out = run_ok(env, &["user", "reset-factors", "tomas"]);
    assert!(out.contains("removed 1 second factor"), "{out}");
    for browser in [&mut owner, &mut visitor] {
        let page = browser.get(a, "/account").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "signed out");
    }
    assert_eq!(a.login("tomas").await.status(), StatusCode::OK);
    // The replicas' public URL is an IP address: no passkeys, and the log
    // says why at start-up.
    assert!(
        a.logs().contains("passkeys need a domain name"),
        "{}",
        a.logs()
    );
    for server in servers {
        server.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factor_across_replicas_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    second_factor_across_replicas(&sqlite_env(dir.path())).await;
}
