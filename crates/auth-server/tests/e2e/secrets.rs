//! Secrets stay out of logs, and the production profile refuses weak settings.

use crate::support::*;

/// Secrets must never reach the logs, even at debug level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_the_logs_of_a_full_session() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "log-test-secret-log-test-secret-0123456789";
    let mut env = sqlite_env(dir.path());
    env.push(("TESSERA_TOKENS__SECRET", secret.into()));
    env.push(("TESSERA_LOG__LEVEL", "debug".into()));
    env.push(("TESSERA_LOG__FORMAT", "json".into()));
    let server = Server::start(&env);
    assert_eq!(server.register("secretive").await, StatusCode::CREATED);
    let login: Value = server.login("secretive").await.json().await.unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(server.me(&access).await, StatusCode::OK);
    let refresh_grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let rotated: Value = server
        .post_form("/token", &refresh_grant)
        .await
        .json()
        .await
        .unwrap();
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    // A reuse (logged as a security event) and a wrong password.
    server.post_form("/token", &refresh_grant).await;
    assert!(login_with(&server, "secretive", "wrong-password-attempt")
        .await
        .is_none());
    for path in ["/introspect", "/revoke"] {
        server.post_form(path, &[("token", access2.as_str())]).await;
    }
    let logs = server.logs();
    server.stop();
    assert!(
        logs.contains("\"request\""),
        "request lines were logged: {logs}"
    );
    for (what, value) in [
        ("password", PASSWORD),
        ("wrong password", "wrong-password-attempt"),
        ("access token", access.as_str()),
        ("rotated access token", access2.as_str()),
        ("refresh token", refresh.as_str()),
        ("rotated refresh token", refresh2.as_str()),
        ("signing secret", secret),
    ] {
        assert!(!logs.contains(value), "the {what} appears in the logs");
    }
}

#[tokio::test]
async fn production_profile_refuses_to_start_with_weak_settings() {
    let output = tessera(&[
        ("TESSERA_PROFILE", "production".into()),
        ("TESSERA_STORAGE__BACKEND", "memory".into()),
        ("TESSERA_TOKENS__SECRET", "short".into()),
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    assert!(stderr.contains("memory"), "{stderr}");
    assert!(
        !stderr.contains("short\""),
        "the secret itself is not echoed"
    );
}
