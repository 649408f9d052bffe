//! Persistence across restarts, registration races, and choosing the backend by configuration alone.

use crate::support::*;

/// Register, log in, restart, log in again; the old access token still works.
pub async fn survives_restart(env: &[(&str, String)]) {
    let first = Server::start(env);
    assert_eq!(first.register("Persistent").await, StatusCode::CREATED);
    let token = first.token("persistent").await;
    assert_eq!(first.me(&token).await, StatusCode::OK);
    first.stop();

    let second = Server::start(env);
    assert_eq!(
        second.me(&token).await,
        StatusCode::OK,
        "old token accepted"
    );
    let fresh = second.token("PERSISTENT@example.org").await;
    assert_eq!(second.me(&fresh).await, StatusCode::OK);
    assert_eq!(second.register("persistent").await, StatusCode::CONFLICT);
    second.stop();
}

pub async fn one_winner_of_fifty(server: &Server) {
    let replies = futures::future::join_all((0..50).map(|i| async move {
        server
            .http
            .post(server.url("/users"))
            .json(&json!({"username": if i % 2 == 0 { "racer" } else { "Racer" }, "email": format!("racer{i}@x.org"), "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .status()
    }))
    .await;
    let created = replies
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = replies
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 49), "{replies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_keeps_users_and_tokens_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // No secret configured: dev generates one into the data folder and keeps it.
    survives_restart(&sqlite_env(dir.path())).await;
    assert!(dir.path().join("hs256.secret").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_has_one_winner_of_fifty_concurrent_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&sqlite_env(dir.path()));
    one_winner_of_fifty(&server).await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_is_chosen_by_config_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[
        ("TESSERA_STORAGE__BACKEND", "memory".into()),
        ("TESSERA_DATA_DIR", dir.path().display().to_string()),
        (
            "TESSERA_TOKENS__SECRET",
            "an-explicit-secret-of-at-least-32-bytes".into(),
        ),
    ]);
    assert_eq!(server.register("ephemeral").await, StatusCode::CREATED);
    let token = server.token("ephemeral").await;
    assert_eq!(server.me(&token).await, StatusCode::OK);
    assert!(
        !dir.path().join("hs256.secret").exists(),
        "a configured secret is used as is"
    );
    // The container health check.
    let healthy = format!("http://{}/healthz", server.addr);
    assert!(tessera(&[])
        .args(["probe", "--url", &healthy])
        .status()
        .unwrap()
        .success());
    let missing = format!("http://{}/nope", server.addr);
    assert!(!tessera(&[])
        .args(["probe", "--url", &missing])
        .status()
        .unwrap()
        .success());
    server.stop();
}
