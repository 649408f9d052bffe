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

/// What `tessera` says, and that it exits non-zero, for a refused configuration.
fn refusal(env: &[(&str, String)]) -> String {
    let output = tessera(env).output().unwrap();
    assert!(!output.status.success(), "refused: {env:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_mistyped_key_or_a_url_of_the_wrong_database_stops_the_start_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut typo = sqlite_env(dir.path());
    typo.push(("TESSERA_STORAGE__AUTO_MIGATE", "false".into()));
    let stderr = refusal(&typo);
    assert!(stderr.contains("auto_migate"), "{stderr}");

    let stderr = refusal(&[
        ("TESSERA_STORAGE__BACKEND", "postgres".into()),
        ("TESSERA_DATA_DIR", dir.path().display().to_string()),
    ]);
    assert!(stderr.contains("storage.url"), "{stderr}");
    assert!(
        stderr.contains("storage.backend = \"postgres\""),
        "{stderr}"
    );
    assert!(
        !dir.path().join("tessera.db").exists(),
        "nothing was opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_with_asymmetric_keys_needs_no_hs256_secret() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys").display().to_string();
    let mut env = sqlite_env(dir.path());
    env.extend([
        ("TESSERA_PROFILE", "production".to_owned()),
        ("TESSERA_TOKENS__ALGORITHM", "EdDSA".to_owned()),
        // Production refuses mail in the log: a local relay (never reached here).
        ("TESSERA_MAIL__TRANSPORT", "smtp".to_owned()),
        ("TESSERA_MAIL__SMTP__HOST", "127.0.0.1".to_owned()),
        ("TESSERA_MAIL__SMTP__SECURITY", "none".to_owned()),
        // Production refuses the cheap test hashing parameters.
        ("TESSERA_PASSWORDS__MEMORY_KIB", "19456".to_owned()),
        ("TESSERA_PASSWORDS__ITERATIONS", "2".to_owned()),
    ]);
    let stderr = refusal(&env);
    assert!(stderr.contains("tokens.keys_dir"), "{stderr}");
    assert!(!stderr.contains("tokens.secret"), "{stderr}");

    run_ok(
        &[],
        &["keys", "generate", "--alg", "EdDSA", "--out", &keys_dir],
    );
    env.push(("TESSERA_TOKENS__KEYS_DIR", keys_dir.clone()));
    // ID tokens are RS256 by default, whatever signs access tokens: the
    // folder needs an RS256 key too, and the message says which setting.
    let stderr = refusal_without_test_id_keys(&env);
    assert!(stderr.contains("no RS256 key"), "{stderr}");
    assert!(stderr.contains("oidc.keys_dir"), "{stderr}");
    run_ok(
        &[],
        &["keys", "generate", "--alg", "RS256", "--out", &keys_dir],
    );
    env.push(("TESSERA_OIDC__KEYS_DIR", keys_dir));
    let server = Server::start(&env);
    assert_eq!(server.register("keyholder").await, StatusCode::CREATED);
    let jwks: Value = server.get_json("/.well-known/jwks.json").await;
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["alg"].as_str())
        .collect();
    assert!(
        algs.contains(&"EdDSA") && algs.contains(&"RS256"),
        "{algs:?}"
    );
    server.stop();
}

/// Like [`refusal`], without the test harness's shared ID-token keys.
fn refusal_without_test_id_keys(env: &[(&str, String)]) -> String {
    let output = tessera(env)
        .env_remove("TESSERA_OIDC__KEYS_DIR")
        .output()
        .unwrap();
    assert!(!output.status.success(), "refused: {env:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn production_refuses_openid_connect_without_a_key_folder_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = sqlite_env(dir.path());
    env.extend([
        ("TESSERA_PROFILE", "production".to_owned()),
        (
            "TESSERA_TOKENS__SECRET",
            "a-production-secret-of-more-than-32-bytes".to_owned(),
        ),
        ("TESSERA_PASSWORDS__MEMORY_KIB", "19456".to_owned()),
        ("TESSERA_PASSWORDS__ITERATIONS", "2".to_owned()),
        ("TESSERA_MAIL__TRANSPORT", "file".to_owned()),
    ]);
    let stderr = refusal_without_test_id_keys(&env);
    assert!(
        stderr.contains("oidc.keys_dir is required in production"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("keys").exists(),
        "production never generates a key"
    );
}
