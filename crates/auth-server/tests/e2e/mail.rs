//! Mail against the real binary and a real SMTP server: an outage across
//! three replicas loses nothing and sends nothing twice, links work on any
//! replica, and `tessera mail test` reports what the server said.

use crate::code_flow::Browser;
use crate::smtp::Smtp;
use crate::support::*;

/// `tessera_mail_sent_total{outcome}` of one server.
async fn mail_counted(server: &Server, outcome: &str) -> u64 {
    let series = format!("tessera_mail_sent_total{{outcome=\"{outcome}\"}} ");
    metric(server, &series).await as u64
}

pub async fn mail_across_replicas(env: &[(&str, String)]) {
    let mut smtp = Smtp::stopped();
    let mut env = env.to_vec();
    env.extend(smtp.env());
    let servers = [
        Server::start(&env),
        Server::start(&env),
        Server::start(&env),
    ];
    let [a, b, c] = &servers;
    for (server, name) in [(a, "mia"), (b, "noa"), (c, "oto")] {
        assert_eq!(
            server.register(name).await,
            StatusCode::CREATED,
            "SMTP is down"
        );
    }
    let old_token = c.token("mia").await;
    let forgot = b
        .http
        .post(b.url("/password/forgot"))
        .json(&json!({ "email": "mia@example.org" }))
        .send()
        .await
        .unwrap();
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    // Long enough for several failed attempts on every replica.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(smtp.messages().is_empty());

    smtp.run();
    let mia = smtp.wait_for("mia@example.org", 2).await;
    smtp.wait_for("noa@example.org", 1).await;
    smtp.wait_for("oto@example.org", 1).await;
    // Time for a duplicate to show up, if any replica were to send one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = smtp.messages();
    assert_eq!(all.len(), 4, "each message exactly once: {all:?}");
    let mut ids: Vec<&str> = all.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);

    // Verification: opened on one replica, confirmed on another.
    let noa = smtp.messages_to("noa@example.org").remove(0);
    let mut browser = Browser::new();
    let done = browser
        .submit_keeping(c, a, &noa.link_path(), "token", &[])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let me = b.me_json(&b.token("noa").await).await;
    assert_eq!(me["email_verified"], true);

    // Reset: the page from one replica, the new password to another.
    let reset = mia
        .iter()
        .find(|m| m.link_path().starts_with("/password/reset"))
        .expect("a reset link");
    let new_password = "an e2e reset passphrase";
    let mut browser = Browser::new();
    let done = browser
        .submit_keeping(
            a,
            c,
            &reset.link_path(),
            "token",
            &[("new_password", new_password)],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(
        a.me(&old_token).await,
        StatusCode::UNAUTHORIZED,
        "sessions ended"
    );
    assert!(login_with(b, "mia", new_password).await.is_some());
    let again = browser.get(b, &reset.link_path()).await;
    assert_eq!(again.status, StatusCode::GONE);
    smtp.wait_for("mia@example.org", 3).await;

    let mut sent = 0;
    let mut retried = 0;
    for server in &servers {
        sent += mail_counted(server, "sent").await;
        retried += mail_counted(server, "retried").await;
    }
    assert_eq!(sent, 5, "counted once, by whichever replica sent it");
    assert!(retried > 0, "the outage was retried");
    for server in servers {
        server.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_survives_an_outage_across_three_replicas_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    mail_across_replicas(&sqlite_env(dir.path())).await;
}

#[test]
fn mail_test_prints_the_servers_reply_or_fails() {
    let mut smtp = Smtp::start();
    let dir = tempfile::tempdir().unwrap();
    let mut env = sqlite_env(dir.path());
    env.extend(smtp.env());
    let reply = run_ok(&env, &["mail", "test", "--to", "ops@example.org"]);
    assert!(reply.starts_with("250"), "{reply}");
    let delivered = smtp.messages_to("ops@example.org");
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].subject.contains("mail test"));

    smtp.stop();
    let output = tessera(&env)
        .args(["mail", "test", "--to", "ops@example.org"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "an unreachable server fails");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mail test failed"), "{stderr}");
}
