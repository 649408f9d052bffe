//! The shared store behaviour, on SQLite: each test gets its own database
//! file in a temporary folder that is removed when the test ends.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use auth_core::Store;
use store_sqlite::{SqliteSettings, SqliteStore};

async fn fresh_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::connect(&SqliteSettings {
        url: format!("sqlite://{}", dir.path().join("tessera.db").display()),
        max_connections: 8,
        acquire_timeout: std::time::Duration::from_secs(10),
    })
    .await
    .expect("connect");
    store.migrate().await.expect("migrate");
    (store, dir)
}

store_conformance::conformance_tests!(sqlite, fresh_store());

#[tokio::test]
async fn migrations_report_what_they_apply_and_are_idempotent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::connect(&SqliteSettings {
        url: format!(
            "sqlite://{}",
            dir.path().join("nested/tessera.db").display()
        ),
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(10),
    })
    .await
    .expect("connect creates the folder and file");
    let pending = store.pending_migrations().await.expect("pending");
    assert!(!pending.is_empty());
    assert_eq!(store.migrate().await.expect("migrate"), pending);
    assert!(store
        .pending_migrations()
        .await
        .expect("pending")
        .is_empty());
    assert!(store.migrate().await.expect("second run").is_empty());
}
