//! The admin CLI against a store a running server also uses.

use crate::support::*;

/// The admin CLI on a store a running server also uses.
pub async fn admin_cli_manages_accounts(env: &[(&str, String)]) {
    let added = run_with_stdin(
        env,
        &[
            "user",
            "add",
            "--username",
            "Oper",
            "--email",
            "op@example.org",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let weak = run_with_stdin(
        env,
        &[
            "user",
            "add",
            "--username",
            "weak",
            "--email",
            "weak@example.org",
        ],
        "password\n",
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("too common"));

    let server = Server::start(env);
    let a = login_with(&server, "oper", PASSWORD)
        .await
        .expect("added user logs in");
    let listed = run_ok(env, &["user", "list"]);
    assert!(
        listed.contains("\tOper\top@example.org\tactive\t"),
        "{listed}"
    );
    assert!(!listed.contains("weak"));

    run_ok(env, &["user", "disable", "oper"]);
    assert_eq!(
        server.me(&a).await,
        StatusCode::UNAUTHORIZED,
        "live token stops at once"
    );
    assert!(login_with(&server, "oper", PASSWORD).await.is_none());
    assert!(run_ok(env, &["user", "list"]).contains("\tdisabled\t"));

    run_ok(env, &["user", "enable", "OP@example.org"]);
    let b = login_with(&server, "oper", PASSWORD)
        .await
        .expect("enabled again");
    let revoked = run_ok(env, &["sessions", "revoke", "--user", "oper"]);
    assert!(revoked.contains("revoked 1 session"), "{revoked}");
    assert_eq!(server.me(&b).await, StatusCode::UNAUTHORIZED);

    let c = login_with(&server, "oper", PASSWORD)
        .await
        .expect("logs in");
    let new_password = "an operator chose this one";
    let reset = run_with_stdin(
        env,
        &["user", "set-password", "oper"],
        &format!("{new_password}\n"),
    );
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert_eq!(server.me(&c).await, StatusCode::UNAUTHORIZED);
    assert!(login_with(&server, "oper", PASSWORD).await.is_none());
    let d = login_with(&server, "oper", new_password)
        .await
        .expect("new password");

    run_ok(env, &["user", "delete", "oper"]);
    assert_eq!(server.me(&d).await, StatusCode::UNAUTHORIZED);
    assert!(login_with(&server, "oper", new_password).await.is_none());
    let again = tessera(env)
        .args(["user", "delete", "oper"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no such user"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    admin_cli_manages_accounts(&sqlite_env(dir.path())).await;
}

#[test]
fn admin_cli_refuses_the_memory_backend_with_a_reason() {
    let output = tessera(&[("TESSERA_STORAGE__BACKEND", "memory".into())])
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("persistent store"));
}
